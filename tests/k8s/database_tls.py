"""A certificate authority of the tests' own, standing in for the one CloudNativePG makes for a Cluster (its
Secret `<cluster>-ca`, key `ca.crt`): it signs the test database server's certificate, and the services
started from the manifests verify that server against it, as they verify CloudNativePG's in the cluster."""

from __future__ import annotations

from support.tls import Authority

# One for the session: the test server's certificate and the `ca.crt` the tests mount must agree.
DATABASE_CA = Authority.new("aldredirekt-db CA (tests)")
