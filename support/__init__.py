"""What tests, benchmarks and local runs share, and product code never imports: a throw-away PostgreSQL
server, free ports on loopback and an SMTP sink."""
