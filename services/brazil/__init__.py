"""Pure Brazilian rules shared by several services (documents, UF codes).

No I/O, no framework imports: identity validates a CPF at registration and KYC
validates CPF/CNPJ/CNH with the same code.
"""
