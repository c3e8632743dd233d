"""`allowlist-knock`: the real binary serving on loopback against the emulator.

An identity provider is played by the test: an RSA and a P-256 key generated here, the discovery
document and the JWKS served on 127.0.0.1, tokens signed by hand (RS256 / ES256, and every way of
getting one wrong). The emulator is asked what rules exist with which tags, and how many AWS
requests a refused knock made (none). The Lambda path runs the same binary against a loopback
stand-in for the Lambda Runtime API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import http.server
import ipaddress
import json
import re
import datetime
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from test_temporary_ingress import REGION, ingress_rules

AUDIENCE = "allowlist-knock-test"
API_KEY = "contractor-a-s3cret-key"
CI_KEY = "ci-s3cret-key"
STARTUP_TIMEOUT = 15  # seconds for `serve` to log its address


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big")


class IdentityProvider:
    """Discovery + JWKS on loopback, and a token factory."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwks_hits = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": owner.issuer, "jwks_uri": owner.issuer + "/jwks"}
                elif self.path == "/jwks":
                    owner.jwks_hits += 1
                    body = owner.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def jwks(self) -> dict:
        n = self.rsa.public_key().public_numbers()
        p = self.ec.public_key().public_numbers()
        return {"keys": [
            {"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256", "n": b64(uint(n.n)), "e": b64(uint(n.e))},
            {"kty": "EC", "kid": "ec1", "use": "sig", "crv": "P-256",
             "x": b64(p.x.to_bytes(32, "big")), "y": b64(p.y.to_bytes(32, "big"))},
        ]}

    def claims(self, sub: str, **extra: Any) -> dict:
        now = int(time.time())
        return {"iss": self.issuer, "aud": AUDIENCE, "sub": sub, "email": f"{sub}@example.com",
                "iat": now, "exp": now + 300, **extra}

    def token(self, sub: str = "alice", alg: str = "RS256", kid: str | None = None,
              key: Any = None, **claims: Any) -> str:
        kid = kid or ("ec1" if alg == "ES256" else "rsa1")
        header = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode())
        payload = b64(json.dumps(self.claims(sub, **claims)).encode())
        signing_input = f"{header}.{payload}".encode()
        if alg == "RS256":
            sig = (key or self.rsa).sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "ES256":
            r, s = decode_dss_signature((key or self.ec).sign(signing_input, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        elif alg == "HS256":
            sig = hmac.new(key, signing_input, hashlib.sha256).digest()
        else:
            sig = b""
        return f"{header}.{payload}.{b64(sig)}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def idp():
    provider = IdentityProvider()
    yield provider
    provider.stop()


@pytest.fixture
def group(emulator) -> str:
    return emulator.seed.security_group(REGION, "bastion")


def doors_toml(group: str, other: str | None = None) -> str:
    text = f"""
[doors.bastion]
region             = "{REGION}"
security_group_ids = ["{group}"]
ports              = [22]
default_ttl        = "1h"
max_ttl            = "8h"
allow_claims       = {{ email = "*@example.com" }}
allow_keys         = ["contractor-a"]
"""
    if other:
        text += f"""
[doors.db]
region             = "{REGION}"
security_group_ids = ["{other}"]
ports              = [5432]
allow_keys         = ["contractor-a", "ci"]
"""
    return text


def keys_toml() -> str:
    line = lambda name, key: f'{name} = "sha256:{hashlib.sha256(key.encode()).hexdigest()}"\n'  # noqa: E731
    return line("contractor-a", API_KEY) + line("ci", CI_KEY)


class Server:
    """A running `allowlist-knock serve`."""

    def __init__(self, process, url: str):
        self.process = process
        self.url = url

    def call(self, method: str, path: str, token: str | None = None, key: str | None = None,
             body: bytes | None = None, headers: dict | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, data=body, method=method)
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        if key is not None:
            request.add_header("X-Api-Key", key)
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, data = response.status, response.read()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read()
        return status, (json.loads(data) if data else None)

    def knock(self, door: str = "bastion", **kw: Any) -> tuple[int, Any]:
        return self.call("POST", f"/v1/doors/{door}/knock", **kw)

    def close(self, door: str = "bastion", **kw: Any) -> tuple[int, Any]:
        return self.call("DELETE", f"/v1/doors/{door}/knock", **kw)


def serve(knock, idp, group: str, *args: str, other: str | None = None, listen: str = "127.0.0.1:0",
          env: dict | None = None) -> Server:
    (knock.workdir / "doors.toml").write_text(doors_toml(group, other))
    (knock.workdir / "keys.toml").write_text(keys_toml())
    process = knock.start(
        "serve", "--listen", listen, "--config", "doors.toml", "--api-keys", "keys.toml",
        "--oidc-issuer", idp.issuer, "--oidc-audience", AUDIENCE, "--region", REGION, *args, env=env,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        found = re.search(r"listening addr=(\S+)", process.stderr())
        if found:
            host = found.group(1)
            return Server(process, f"http://{host}")
        if process.poll() is not None:
            break
        time.sleep(0.02)
    raise AssertionError(f"allowlist-knock serve did not start:\n{process.stderr()}")


def rules_of(emulator, group: str) -> list[dict]:
    return ingress_rules(emulator, [group])


def holders(rule: dict) -> dict[str, str]:
    return {k: v for k, v in rule["TagMap"].items() if k.startswith("allowlist:holder:")}


def test_knock_opens_extends_and_closes(knock, emulator, idp, group):
    server = serve(knock, idp, group)
    alice = idp.token("alice")

    status, grant = server.knock(token=alice)
    assert status == 201, grant
    assert grant["cidr"] == "127.0.0.1/32"
    [rule] = rules_of(emulator, group)
    assert [rule["SecurityGroupRuleId"]] == grant["rule_ids"]
    assert (rule["FromPort"], rule["ToPort"], rule["CidrIpv4"]) == (22, 22, "127.0.0.1/32")
    tags = rule["TagMap"]
    assert tags["allowlist:managed-by"] == "allowlist"
    assert tags["allowlist:grant-id"] == grant["grant_id"]
    assert tags["allowlist:expires-at"] == grant["expires_at"]
    assert tags["allowlist:granted-by"] == f"knock:{idp.issuer}#alice"
    assert "allowlist:created-at" in tags
    assert list(holders(rule)) == [f"allowlist:holder:{grant['grant_id']}"]
    assert rule["Description"] == "allowlist-knock door bastion"

    # Again, for longer: the same grant, extended; no second rule.
    status, again = server.knock(token=alice, body=b'{"ttl": "2h"}')
    assert status == 200, again
    assert again["grant_id"] == grant["grant_id"] and again["rule_ids"] == grant["rule_ids"]
    assert again["expires_at"] > grant["expires_at"]
    [rule] = rules_of(emulator, group)
    assert rule["TagMap"]["allowlist:expires-at"] == again["expires_at"]

    status, listing = server.call("GET", "/v1/doors", token=alice)
    assert status == 200
    assert [d["name"] for d in listing["doors"]] == ["bastion"]
    assert [g["grant_id"] for g in listing["doors"][0]["grants"]] == [grant["grant_id"]]

    status, body = server.close(token=alice)
    assert (status, body) == (204, None)
    assert rules_of(emulator, group) == []


def test_two_principals_from_one_address_share_the_rule(knock, emulator, idp, group):
    server = serve(knock, idp, group)
    alice, bob = idp.token("alice"), idp.token("bob", alg="ES256")
    status, a = server.knock(token=alice)
    assert status == 201
    status, b = server.knock(token=bob)
    assert status == 201, b
    assert a["grant_id"] != b["grant_id"] and a["rule_ids"] == b["rule_ids"]
    [rule] = rules_of(emulator, group)
    assert set(holders(rule)) == {f"allowlist:holder:{a['grant_id']}", f"allowlist:holder:{b['grant_id']}"}

    # Bob leaves: Alice keeps the rule.
    assert server.close(token=bob)[0] == 204
    [rule] = rules_of(emulator, group)
    assert set(holders(rule)) == {f"allowlist:holder:{a['grant_id']}"}
    assert rule["TagMap"]["allowlist:expires-at"] == a["expires_at"]
    assert server.close(token=alice)[0] == 204
    assert rules_of(emulator, group) == []


def test_every_bad_token_and_key_is_401_with_no_aws_call(knock, emulator, idp, group):
    server = serve(knock, idp, group)
    public_pem = idp.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    past = int(time.time()) - 3600
    bad = {
        "forged": idp.token(key=idp.stranger),
        "expired": idp.token(exp=past, iat=past - 300),
        "wrong audience": idp.token(aud="someone-else"),
        "wrong issuer": idp.token(iss="https://issuer.example.com"),
        "alg none": idp.token(alg="none"),
        "HS256 with the public key": idp.token(alg="HS256", key=public_pem),
        "unknown kid": idp.token(kid="rotated-away"),
    }
    emulator.clear_requests()
    for what, token in bad.items():
        status, body = server.knock(token=token)
        assert (status, body["code"]) == (401, "unauthorized"), f"{what}: {body}"
    for key in ["wrong-key", API_KEY.upper(), ""]:
        assert server.knock(key=key)[0] == 401, key
    assert server.knock()[0] == 401
    assert emulator.count() == 0, emulator.requests()
    assert rules_of(emulator, group) == []


def test_refusals_403_404_409_413_400_and_429(knock, emulator, idp, group):
    other = emulator.seed.security_group(REGION, "db")
    server = serve(knock, idp, group, "--rate-per-principal", "4", "--max-grants-per-principal", "1",
                   other=other)
    emulator.clear_requests()
    status, body = server.knock(key=CI_KEY)
    assert (status, body["code"]) == (403, "forbidden"), body
    assert server.knock(token=idp.token("eve", email="eve@example.org"))[0] == 403
    assert server.knock("nowhere", key=API_KEY)[0] == 404
    assert server.knock(key=API_KEY, body=b"x" * 5000)[0] == 413
    status, body = server.knock(key=API_KEY, body=b'{"ttl": "9h"}')
    assert status == 400 and "max_ttl of 8h" in body["message"], body
    assert emulator.count() == 0, emulator.requests()

    # One live grant at most: a second door is refused, re-knocking the first is not.
    assert server.knock(key=API_KEY)[0] == 201
    status, body = server.knock("db", key=API_KEY)
    assert (status, body["code"]) == (429, "too_many_grants"), body
    # The principal's fourth request in a minute is its last.
    assert server.knock(key=API_KEY)[0] == 200
    status, body = server.knock(key=API_KEY)
    assert (status, body["code"]) == (429, "rate_limited"), body

    # A rule allowlist does not manage blocks the grant, untouched.
    foreign = emulator.seed.ingress_rule(REGION, other, "127.0.0.1/32", 5432)
    status, body = server.knock("db", key=CI_KEY)
    assert (status, body["code"]) == (409, "conflict"), body
    assert [r["SecurityGroupRuleId"] for r in rules_of(emulator, other)] == [foreign]


def test_rate_per_ip_counts_every_outcome(knock, emulator, idp, group):
    server = serve(knock, idp, group, "--rate-per-ip", "3")
    for _ in range(3):
        assert server.knock(key="guess")[0] == 401
    status, body = server.knock(key=API_KEY)
    assert (status, body["code"]) == (429, "rate_limited")
    assert server.call("GET", "/healthz")[0] == 200
    assert rules_of(emulator, group) == []


def test_forwarded_for_only_from_a_trusted_proxy(knock, emulator, idp, group):
    server = serve(knock, idp, group)
    spoof = {"X-Forwarded-For": "203.0.113.9"}
    status, grant = server.knock(key=API_KEY, headers=spoof)
    assert status == 201 and grant["cidr"] == "127.0.0.1/32", grant
    server.close(key=API_KEY)

    proxied = serve(knock, idp, group, "--trusted-proxy", "127.0.0.0/8")
    status, grant = proxied.knock(key=API_KEY, headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9"})
    assert status == 201 and grant["cidr"] == "203.0.113.9/32", grant
    assert [r["CidrIpv4"] for r in rules_of(emulator, group)] == ["203.0.113.9/32"]


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_caller_gets_a_128(knock, emulator, idp, group):
    server = serve(knock, idp, group, listen="[::1]:0")
    assert server.url.startswith("http://[::1]:")
    status, grant = server.knock(token=idp.token("alice"))
    assert status == 201 and grant["cidr"] == "::1/128", grant
    [rule] = rules_of(emulator, group)
    assert rule["CidrIpv6"] == "::1/128"


def test_the_sweep_removes_an_expired_knock(knock, publisher, emulator, idp, group):
    server = serve(knock, idp, group)
    assert server.knock(key=API_KEY, body=b'{"ttl": "30m"}')[0] == 201
    kept = publisher.run("sweep", "--regions", REGION)
    assert kept.rc == 0, kept.stderr
    assert len(rules_of(emulator, group)) == 1
    swept = publisher.run("sweep", "--regions", REGION, env={"ALLOWLIST_CLOCK_OFFSET": "31m"})
    assert swept.rc == 0, swept.stderr
    assert rules_of(emulator, group) == []


def test_trace_logs_hold_no_token_or_key(knock, emulator, idp, group):
    server = serve(knock, idp, group, "--log-level", "trace")
    token = idp.token("alice")
    assert server.knock(token=token)[0] == 201
    assert server.knock(token=idp.token("alice", aud="nope"))[0] == 401
    assert server.knock(key=API_KEY)[0] == 201
    assert server.knock(key=API_KEY + "x")[0] == 401
    assert server.close(key=API_KEY)[0] == 204
    server.process.kill()
    log = server.process.stderr()
    assert f"{idp.issuer}#alice" in log, "the principal is logged"
    for secret in [token, token.split(".")[2], API_KEY, hashlib.sha256(API_KEY.encode()).hexdigest()]:
        assert secret not in log


def test_the_client_opens_and_closes(knock, emulator, idp, group):
    server = serve(knock, idp, group)
    env = {"ALLOWLIST_KNOCK_API_KEY": API_KEY}
    opened = knock.run("open", "bastion", "--url", server.url, "--ttl", "15m", env=env)
    assert opened.rc == 0, opened.stderr
    grant = json.loads(opened.stdout)
    assert grant["cidr"] == "127.0.0.1/32"
    assert API_KEY not in opened.stdout + opened.stderr
    closed = knock.run("close", "bastion", "--url", server.url, env=env)
    assert closed.rc == 0, closed.stderr
    assert rules_of(emulator, group) == []
    token = idp.token("alice")
    opened = knock.run("open", "bastion", "--url", server.url, "--token-command", f"echo {token}")
    assert opened.rc == 0, opened.stderr
    refused = knock.run("open", "db", "--url", server.url, env=env)
    assert refused.rc == 1 and "404" in refused.stderr


def test_start_refuses_bad_doors_naming_them(knock, idp, group):
    (knock.workdir / "bad.toml").write_text(doors_toml(group).replace(group, "sg-nothex!"))
    (knock.workdir / "keys.toml").write_text(keys_toml())
    result = knock.run("serve", "--listen", "127.0.0.1:0", "--config", "bad.toml", "--api-keys", "keys.toml",
                       "--oidc-issuer", idp.issuer, "--oidc-audience", AUDIENCE)
    assert result.rc == 2 and 'door "bastion"' in result.stderr, result.stderr
    (knock.workdir / "doors.toml").write_text(doors_toml(group))
    result = knock.run("serve", "--listen", "127.0.0.1:0", "--config", "doors.toml", "--api-keys", "keys.toml",
                       "--oidc-issuer", "http://idp.example.com", "--oidc-audience", AUDIENCE)
    assert result.rc == 2 and "only https" in result.stderr, result.stderr


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A P-256 certificate for 127.0.0.1 and its key, as PEM files in `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "knock.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "knock.crt", directory / "knock.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_serve_over_tls_with_its_own_certificate(knock, emulator, idp, group):
    cert, key = self_signed(knock.workdir)
    server = serve(knock, idp, group, "--tls-cert", str(cert), "--tls-key", str(key))
    assert "scheme=https" in server.process.stderr()
    https = server.url.replace("http://", "https://")
    context = ssl.create_default_context(cafile=str(cert))
    with urllib.request.urlopen(https + "/healthz", timeout=10, context=context) as response:
        assert response.status == 200
    request = urllib.request.Request(https + "/v1/doors/bastion/knock", data=b"{}", method="POST",
                                     headers={"Authorization": f"Bearer {idp.token('alice')}"})
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        assert response.status == 201 and json.loads(response.read())["cidr"] == "127.0.0.1/32"
    # Plain HTTP to the TLS port gets no answer from the handler.
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
        urllib.request.urlopen(server.url + "/healthz", timeout=10)

    # A key that does not go with the certificate, or no certificate at all: exit 2, naming the flag.
    other, other_key = self_signed(knock.workdir / "..")
    for args, flag in (((str(cert), str(other_key)), "--tls-key"), ((str(key), str(key)), "--tls-cert")):
        result = knock.run("serve", "--listen", "127.0.0.1:0", "--config", "doors.toml", "--api-keys", "keys.toml",
                           "--oidc-issuer", idp.issuer, "--oidc-audience", AUDIENCE,
                           "--tls-cert", args[0], "--tls-key", args[1])
        assert result.rc == 2 and flag in result.stderr, result.stderr


class FakeRuntime:
    """A loopback Lambda Runtime API: hands out `events` one by one, records the responses; once
    out of events, `next` waits (as Lambda does) until `stop`."""

    def __init__(self, events: list[dict]) -> None:
        self.events = list(events)
        self.responses: list[tuple[str, dict]] = []
        self.done = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if not owner.events:
                    owner.done.wait(30)
                    try:
                        self.send_error(500)
                    except OSError:
                        pass  # the runtime process is gone already
                    return
                data = json.dumps(owner.events.pop(0)).encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", f"req-{len(owner.responses)}")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.responses.append((self.path, json.loads(body)))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.done.set()
        self.server.shutdown()
        self.server.server_close()


def function_url_event(method: str, path: str, headers: dict, source_ip: str, body: str = "") -> dict:
    return {"version": "2.0", "rawPath": path, "rawQueryString": "", "headers": headers,
            "requestContext": {"http": {"method": method, "path": path, "sourceIp": source_ip}},
            "body": body, "isBase64Encoded": False}


def test_lambda_serves_function_url_events(knock, emulator, idp, group):
    (knock.workdir / "doors.toml").write_text(doors_toml(group))
    (knock.workdir / "keys.toml").write_text(keys_toml())
    knock_path = "/v1/doors/bastion/knock"
    runtime = FakeRuntime([
        function_url_event("POST", knock_path, {"x-api-key": API_KEY, "x-forwarded-for": "6.6.6.6"},
                           "198.51.100.23", '{"ttl": "10m"}'),
        function_url_event("POST", knock_path, {"x-api-key": "guess"}, "198.51.100.23"),
    ])
    try:
        process = knock.start(env={
            "AWS_LAMBDA_RUNTIME_API": runtime.address,
            "ALLOWLIST_KNOCK_CONFIG": "doors.toml",
            "ALLOWLIST_KNOCK_API_KEYS": "keys.toml",
            "ALLOWLIST_KNOCK_OIDC_ISSUER": idp.issuer,
            "ALLOWLIST_KNOCK_OIDC_AUDIENCE": AUDIENCE,
            "ALLOWLIST_KNOCK_REGION": REGION,
            "ALLOWLIST_KNOCK_LOG_FORMAT": "json",
        })
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while len(runtime.responses) < 2 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        assert len(runtime.responses) == 2, process.stderr()
        (path, first), (_, second) = runtime.responses
        assert path == "/2018-06-01/runtime/invocation/req-0/response"
        assert first["statusCode"] == 201, first
        assert json.loads(first["body"])["cidr"] == "198.51.100.23/32", "sourceIp, not X-Forwarded-For"
        assert second["statusCode"] == 401
        [rule] = rules_of(emulator, group)
        assert rule["CidrIpv4"] == "198.51.100.23/32"
        assert all(json.loads(line) for line in process.stderr().splitlines() if line.strip())
    finally:
        runtime.stop()
