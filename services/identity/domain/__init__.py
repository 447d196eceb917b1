"""Identity's pure rules: no gRPC, SQL, Redis or clock reads in here.

Functions take `now`/`today` as arguments so tests can pin time.
"""
