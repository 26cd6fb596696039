"""Who is calling: client certificates, bearer tokens, and the tenant they act for."""
