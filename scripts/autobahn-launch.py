"""wstest (the Python 3 port of Autobahn|Testsuite) with the run-time fixes
that scripts/autobahn.sh and scripts/autobahn-server.sh need; the suite's
checkout stays untouched.  Run with PYTHONPATH=<suite>/autobahntestsuite:

    python3 scripts/autobahn-launch.py -m fuzzingserver -s spec.json
    python3 scripts/autobahn-launch.py -m fuzzingclient -s spec.json

- bytes fields in the per-case report are turned into str before the JSON
  dump (json.dumps fails on them otherwise);
- the fuzzingserver listens on 127.0.0.1 only (it would bind every
  interface);
- TLS for the fuzzingclient: with a "hostname" in the server entry it uses
  optionsForClientTLS(hostname), which verifies against the system roots;
  WSBEAT_AUTOBAHN_CA names the test CA to trust instead.
"""
import json
import os
import sys

from autobahntestsuite import fuzzing, wstest
from twisted.internet import ssl as _ssl


def _strify(o):
    if isinstance(o, (bytes, bytearray)):
        return o.decode("utf8", "backslashreplace")
    if isinstance(o, dict):
        return {(_strify(k) if isinstance(k, (bytes, bytearray)) else k): _strify(v)
                for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_strify(x) for x in o]
    return o


class _Json:
    def __getattr__(self, name):
        return getattr(json, name)

    def dumps(self, obj, *a, **kw):
        return json.dumps(_strify(obj), *a, **kw)


fuzzing.json = _Json()

_listen = fuzzing.listenWS


def _listen_loopback(factory, contextFactory=None, backlog=50, interface=""):
    return _listen(factory, contextFactory, backlog, interface="127.0.0.1")


fuzzing.listenWS = _listen_loopback

_ca = os.environ.get("WSBEAT_AUTOBAHN_CA")


class _Ssl:
    def __getattr__(self, name):
        return getattr(_ssl, name)

    def optionsForClientTLS(self, hostname, **kw):
        if _ca:
            with open(_ca, "rb") as f:
                kw.setdefault("trustRoot", _ssl.Certificate.loadPEM(f.read()))
        return _ssl.optionsForClientTLS(hostname, **kw)


fuzzing.ssl = _Ssl()

sys.argv = ["wstest"] + sys.argv[1:]
wstest.run()
