"""Peers for mailgrid_policy's tests and benchmark: a slapd that also knows
the sending-limit schema, mailgrid_policy itself, a Postfix smtpd with
SMTP AUTH (through sasl_ldap_auth) that asks it, and raw clients for the
policy protocol."""

import base64
import hashlib
import os
import socket

import harness
from harness import LOCAL, SUFFIX, Postfix, Slapd, binary, free_port, wait_for, wait_port

POLICY_SCHEMA = os.path.join(harness.REPO, "deploy", "ldap", "mailsuite-policy.schema")


def ssha(password, salt=b"mgpolicy"):
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


def policy_slapd(lab, ldif_files, name="slapd"):
    """slapd with mailsuite.schema and mailsuite-policy.schema (mailSendLimits)."""
    with open(harness.SCHEMA) as a, open(POLICY_SCHEMA) as b:
        combined = lab.write(f"{name}-schema.schema", a.read() + "\n" + b.read())
    saved = harness.SCHEMA
    harness.SCHEMA = combined  # Slapd writes "include <SCHEMA>" into its slapd.conf
    try:
        return Slapd(lab, ldif_files, name=name)
    finally:
        harness.SCHEMA = saved


def start_policy(lab, cf_path, name="policy", policy_port=None, milter_port=None, extra=()):
    """mailgrid_policy in the foreground; returns (proc, policy_port, milter_port)."""
    args = [binary("mailgrid_policy"), "-f", "-c", cf_path, *extra]
    if policy_port is not None:
        args += ["--policy-listen", f"127.0.0.1:{policy_port}"]
    else:
        args += ["-o", "policy_listen="]
    if milter_port is not None:
        args += ["--milter-listen", f"127.0.0.1:{milter_port}"]
    p = lab.spawn(name, args)
    for port in (policy_port, milter_port):
        if port is None:
            continue
        try:
            wait_port(port, 15)
        except AssertionError:
            raise AssertionError(f"mailgrid_policy did not start: {p.stderr()}")
    return p


def policy_request(**attrs):
    """A request as Postfix 3.7 sends it at RCPT, with attrs overriding."""
    req = {"request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
           "client_address": "192.0.2.7", "client_name": "client.example.net", "client_port": "40000",
           "reverse_client_name": "client.example.net", "server_address": "127.0.0.1", "server_port": "25",
           "helo_name": "client.example.net", "sender": "someone@example.net", "recipient": "",
           "recipient_count": "0", "queue_id": "", "instance": "1a2b.5f3c1d2e.0", "size": "0", "etrn_domain": "",
           "stress": "", "sasl_method": "", "sasl_username": "", "sasl_sender": "", "ccert_subject": "",
           "ccert_issuer": "", "ccert_fingerprint": "", "ccert_pubkey_fingerprint": "", "encryption_protocol": "",
           "encryption_cipher": "", "encryption_keysize": "0", "policy_context": "",
           "compatibility_level": "3.6", "mail_version": "3.7.11"}
    req.update(attrs)
    return "".join(f"{k}={v}\n" for k, v in req.items()) + "\n"


def policy_exchange(port, data, timeout=10):
    """Sends raw bytes, half-closes, returns everything the server answered."""
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        try:
            s.sendall(data if isinstance(data, bytes) else data.encode())
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server closed first: it had read enough to refuse
        out = b""
        while True:
            try:
                c = s.recv(65536)
            except OSError:
                break
            if not c:
                break
            out += c
    return out.decode("utf-8", "replace")


def policy_ask(port, **attrs):
    """The action for one request on a fresh connection."""
    reply = policy_exchange(port, policy_request(**attrs))
    assert reply.startswith("action=") and reply.endswith("\n\n"), repr(reply)
    return reply[len("action="):-2]


class SaslPostfix(Postfix):
    """Postfix smtpd with SMTP AUTH through a saslauthd socket, relaying
    everything to one next hop (a sink) and asking mailgrid_policy."""

    def __init__(self, lab, name, mux, relay_port, policy_port=None, milter_port=None, extra=None):
        params = {
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "cyrus",
            "smtpd_sasl_path": "smtpd",
            "smtpd_sasl_security_options": "noanonymous",
            # Clients on 127.0.0.1 are strangers: only a login relays.
            "mynetworks": "127.0.0.2/32",
            "relay_domains": "example.com",
            "relay_transport": f"smtp:[127.0.0.1]:{relay_port}",
            "default_transport": f"smtp:[127.0.0.1]:{relay_port}",
            "smtpd_relay_restrictions": "permit_sasl_authenticated, reject_unauth_destination",
            "smtpd_recipient_restrictions": (f"check_policy_service inet:127.0.0.1:{policy_port}"
                                             if policy_port else ""),
            "smtpd_policy_service_timeout": "20s",
        }
        if milter_port:
            params["smtpd_milters"] = f"inet:127.0.0.1:{milter_port}"
            params["milter_default_action"] = "tempfail"
            params["milter_command_timeout"] = "30s"
        params.update(extra or {})
        super().__init__(lab, name=name, start=False, main_cf=params)
        lab.write(os.path.relpath(os.path.join(self.etc, "sasl", "smtpd.conf"), lab.dir),
                  f"pwcheck_method: saslauthd\nsaslauthd_path: {mux}\nmech_list: PLAIN LOGIN\n")
        self.start()

    def session(self, login=None, password=None):
        s = self.smtp()
        if login:
            s.login(login, password)
        return s
