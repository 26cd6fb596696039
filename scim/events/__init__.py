"""Security events (RFC 9967): changes told to receivers as signed Security Event Tokens."""
