# A real SMTP server for notify's tests, on aiosmtpd (Debian: python3-aiosmtpd). It offers
# STARTTLS and requires it before anything else, accepts AUTH (PLAIN) only over TLS for one
# user, writes each mail to a directory and prints "mail <path>" once it is written.
# Usage: smtpd.py CERT KEY PORT OUTDIR USER PASSWORD; it stops when stdin closes.
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

cert, key, port, outdir, user, password = sys.argv[1:7]
count = 0


class Handler:
    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        path = os.path.join(outdir, "%d.eml" % count)
        head = "X-Test-Rcpt: %s\r\nX-Test-TLS: %s\r\nX-Test-Auth: %s\r\n" % (
            ",".join(envelope.rcpt_tos), session.ssl is not None, session.authenticated)
        with open(path, "wb") as f:
            f.write(head.encode() + envelope.original_content)
        print("mail " + path, flush=True)
        return "250 OK"


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user
          and auth_data.password.decode() == password)
    return AuthResult(success=ok)


ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
controller = Controller(Handler(), hostname="127.0.0.1", port=int(port), tls_context=ctx,
                        require_starttls=True, authenticator=authenticate, auth_require_tls=True)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
