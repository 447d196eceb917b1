"""Receita Federal simulator: CPF situation and CNPJ lookup (BrasilAPI shape)."""
