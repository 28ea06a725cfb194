"""Live probes of what the compliance panel cannot read from DNS: TLS to each SMTP relay (a
real STARTTLS handshake, or implicit TLS, with the relay's own certificate rule; no login, no
mail) and the one-click unsubscribe URL of a composed message (an RFC 8058 POST). Each returns
(status, detail); a relay or URL that does not answer is "could not check" (unknown)."""
from __future__ import annotations

import smtplib
import ssl

import urllib3

OLD_TLS = ("SSLv3", "TLSv1", "TLSv1.1")


def _context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def relay_tls(relay: dict, timeout: float) -> tuple[str, str]:
    """(status, detail) of the TLS a relay gives us: pass for TLS 1.2+ with a verified
    certificate; warn when the certificate is not verified (verify_tls = false) or the relay
    offers STARTTLS but security = "none"; fail for plain text or old TLS."""
    host, port, security = relay["host"], relay["port"], relay["security"]
    verify = relay.get("verify_tls", True)
    helo = relay.get("helo") or None
    name = f"{host}:{port}"
    try:
        if security == "tls":
            conn = smtplib.SMTP_SSL(host, port, local_hostname=helo, timeout=timeout,
                                    context=_context(verify))
            conn.ehlo()
        else:
            conn = smtplib.SMTP(host, port, local_hostname=helo, timeout=timeout)
            conn.ehlo()
            offered = conn.has_extn("starttls")
            if security == "none" or not offered:
                _quit(conn)
                if security == "none":
                    return "fail", (f"{name}: mail is handed over in plain text (security = "
                                    f"\"none\"){'; the relay offers STARTTLS: set security = starttls' if offered else ''}")
                return "fail", f"{name} does not offer STARTTLS: mail would go in plain text"
            conn.starttls(context=_context(verify))
            conn.ehlo()
    except ssl.SSLCertVerificationError as exc:
        return "fail", f"{name}: the relay's certificate does not verify ({exc.verify_message})"
    except (ssl.SSLError, smtplib.SMTPException) as exc:
        return "fail", f"{name}: TLS handshake failed ({_describe(exc)})"
    except OSError as exc:
        return "unknown", f"could not check: {name} did not answer ({_describe(exc)})"
    version, cipher = conn.sock.version(), conn.sock.cipher()
    _quit(conn)
    said = f"{name}: {'STARTTLS' if security == 'starttls' else 'implicit TLS'}, {version}, " \
           f"{cipher[0] if cipher else ''}"
    if version in OLD_TLS:
        return "fail", f"{said}: TLS older than 1.2"
    if not verify:
        return "warn", f"{said}; the certificate is not verified (verify_tls = false)"
    return "pass", f"{said}, certificate verified"


def _quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()


def one_click_post(url: str, timeout: float) -> tuple[str, str]:
    """POSTs "List-Unsubscribe=One-Click" to the URL as a mailbox provider does (no cookies,
    no redirects followed): pass when it answers 2xx."""
    shown = url.split("/p/u/")[0] + "/p/u/…" if "/p/u/" in url else url
    try:
        response = urllib3.request(
            "POST", url, body=b"List-Unsubscribe=One-Click", redirect=False, retries=False,
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "User-Agent": "ALTKRAFT compliance self-test"},
            timeout=urllib3.Timeout(connect=timeout, read=timeout))
    except urllib3.exceptions.HTTPError as exc:
        return "unknown", f"could not check: POST {shown} did not answer ({_describe(exc)})"
    if 200 <= response.status < 300:
        return "pass", f"POST {shown} answered {response.status}"
    return "fail", f"POST {shown} answered {response.status}: mailbox providers take that " \
                   "as a failed unsubscribe"
