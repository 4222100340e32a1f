"""The stand-in ``az`` executable, so the real ``AzureCliCredential`` runs unchanged.

It answers ``az account get-access-token`` (and ``az account show``) for the simulated
subscription. When ``<workdir>/az-logged-out`` exists it fails as the real ``az`` does
when nobody is logged in.

On disk it behaves like the real one (azure-cli-core): every call writes under
``$AZURE_CONFIG_DIR`` (default ``~/.azure``): the directory itself, ``az.sess`` when it
is missing or older than an hour (``SESSION.load(..., max_age=3600)``), a command log
``commands/<date>.<time>.<command>.<pid>.log`` (only the newest are kept, as azlogging
does), and for ``get-access-token`` the MSAL token cache ``msal_token_cache.json`` under
its ``.lockfile`` (msal-extensions). Where it cannot write it fails the same way:
a traceback ending in ``OSError: [Errno 30] Read-only file system: '<path>'`` when
starting, "The command failed with an unexpected error. Here is the traceback:" and
``[Errno 30] ...`` during the command; exit status 1. The token cache is replaced
whole (written aside, then renamed), keeping every entry that is not the simulator's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..fsio import atomic_write

TENANT_ID = "00000000-0000-0000-0000-00000000000f"
LOGGED_OUT_FLAG = "az-logged-out"
TOKEN_CACHE = "msal_token_cache.json"
# The simulator's token-cache entries carry this "environment" (real ones: a login host).
CACHE_ENVIRONMENT = "login.azlin-simulator.invalid"

SCRIPT = '''#!{python}
"""Stand-in for the Azure CLI, written by the azlin-lifecycle simulator."""
import contextlib, datetime, fcntl, json, os, secrets, sys, time, traceback

SUBSCRIPTION = {subscription!r}
TENANT = {tenant!r}
LOGGED_OUT = {logged_out!r}
TOKEN_CACHE = {token_cache!r}
CACHE_ENVIRONMENT = {cache_environment!r}
AZ_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"  # the Azure CLI's application id
CONFIG_DIR = (os.environ.get("AZURE_CONFIG_DIR")
              or os.path.expanduser(os.path.join("~", ".azure")))
KEEP_LOGS, MAX_LOGS = 5, 25

args = sys.argv[1:]
words = [a for a in args if not a.startswith("-")]


def option(name, default=None):
    return args[args.index(name) + 1] if name in args[:-1] else default


def start_session():
    """AzCli.__init__: ensure_dir(config dir); az.sess rewritten if missing or stale."""
    os.makedirs(CONFIG_DIR, exist_ok=True)
    sess = os.path.join(CONFIG_DIR, "az.sess")
    with contextlib.suppress(OSError, ValueError):  # missing or unreadable: write it anew
        if os.stat(sess).st_mtime + 3600 >= time.time():
            with open(sess, encoding="utf-8-sig") as f:
                json.load(f)
            return
    with open(sess, "w", encoding="utf-8-sig") as f:
        json.dump({{}}, f)


def command_log():
    """azlogging: one log per command; values of options shown as {{}}, as az does."""
    log_dir = os.path.join(CONFIG_DIR, "commands")
    os.makedirs(log_dir, exist_ok=True)
    now = datetime.datetime.now()
    command = "_".join(words[:2]) or "unknown_command"
    name = "{{}}.{{:02}}-{{:02}}-{{:02}}.{{}}.{{}}.log".format(
        now.date(), now.hour, now.minute, now.second, command, os.getpid())
    shown, after_option = [], False
    for a in args:
        shown.append("{{}}" if after_option and not a.startswith("-") else a)
        after_option = a.startswith("-")
    with open(os.path.join(log_dir, name), "a", encoding="utf-8") as f:
        f.write("CMD-LOG-LINE-BEGIN {{}} | {{}} | INFO | az_command_data_logger | command "
                "args: {{}}\\n".format(os.getpid(), now.isoformat(" ", "milliseconds"),
                                       " ".join(shown)))
    logs = sorted((n for n in os.listdir(log_dir) if n.endswith(".log")), reverse=True)
    if len(logs) > MAX_LOGS:
        for old in logs[KEEP_LOGS:]:
            try:
                os.remove(os.path.join(log_dir, old))
            except OSError:
                continue


def cache_token(token, expires, resource):
    """msal-extensions: under <cache>.lockfile, read the cache, add the token, write it."""
    cache = os.path.join(CONFIG_DIR, TOKEN_CACHE)
    lock = cache + ".lockfile"
    with open(lock, "wb+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write("{{}} {{}}".format(os.getpid(), sys.argv[0]).encode("utf-8"))
        try:
            with open(cache, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            data = {{}}
        except ValueError:
            data = None  # not a cache this stand-in may rewrite
        if isinstance(data, dict):
            entries = data.setdefault("AccessToken", {{}})
            now = int(time.time())
            for key in [k for k, v in entries.items()
                        if isinstance(v, dict) and v.get("environment") == CACHE_ENVIRONMENT
                        and int(v.get("expires_on", 0)) <= now]:
                del entries[key]
            scope = resource.rstrip("/") + "/.default"
            home = "simulator." + TENANT
            key = "-".join([home, CACHE_ENVIRONMENT, "accesstoken", AZ_CLIENT_ID, TENANT,
                            scope]).lower()
            entries[key] = {{"credential_type": "AccessToken", "secret": token,
                            "home_account_id": home, "environment": CACHE_ENVIRONMENT,
                            "client_id": AZ_CLIENT_ID, "target": scope, "realm": TENANT,
                            "token_type": "Bearer", "cached_at": str(now),
                            "expires_on": str(expires), "extended_expires_on": str(expires)}}
            tmp = "{{}}.{{}}.tmp".format(cache, os.getpid())
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, cache)  # whole, even if two of us raced past the lock
    # Another az may have removed it first, as msal-extensions allows.
    with contextlib.suppress(FileNotFoundError):
        os.remove(lock)


def access_token(resource, expires):
    """A JWT as Entra ID issues them (audience, issuer, lifetime), unsigned: what Azurite's
    OAuth check reads; the stand-in ARM only needs a bearer token."""
    import base64

    def part(claims):
        text = json.dumps(claims, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(text).rstrip(b"=").decode()

    now = int(time.time())
    return ".".join([part({{"alg": "none", "typ": "JWT"}}), part({{
        "aud": resource.rstrip("/"), "iss": "https://sts.windows.net/" + TENANT + "/",
        "iat": now, "nbf": now - 300, "exp": expires, "tid": TENANT,
        "jti": secrets.token_urlsafe(12)}}), "simulator"])


def run():
    if words[:2] == ["account", "get-access-token"] or words[:2] == ["account", "show"]:
        if os.path.exists(LOGGED_OUT):
            sys.stderr.write("ERROR: Please run 'az login' to setup account.\\n")
            return 1
        if words[1] == "show":
            print(json.dumps({{"id": SUBSCRIPTION, "tenantId": TENANT, "name": "azlin simulator",
                              "state": "Enabled", "isDefault": True,
                              "user": {{"name": "simulator@example.invalid", "type": "user"}}}}))
            return 0
        expires = int(time.time()) + 3600
        resource = option("--resource", "https://management.azure.com/")
        token = access_token(resource, expires)
        cache_token(token, expires, resource)
        print(json.dumps({{
            "accessToken": token,
            "expiresOn": time.strftime("%Y-%m-%d %H:%M:%S.000000", time.localtime(expires)),
            "expires_on": expires,
            "subscription": SUBSCRIPTION,
            "tenant": TENANT,
            "tokenType": "Bearer",
        }}, indent=2))
        return 0
    if words[:1] == ["version"] or "--version" in args:
        print(json.dumps({{"azure-cli": "2.70.0 (azlin-lifecycle simulator)"}}))
        return 0
    sys.stderr.write("ERROR: '" + " ".join(words) + "' is misspelled or not recognized by the "
                     "system (this is the azlin-lifecycle simulator's stand-in az).\\n")
    return 2


try:
    start_session()
except OSError:
    traceback.print_exc()  # the real az, too, dies with a bare traceback here
    sys.exit(1)
try:
    command_log()
    status = run()
except OSError as exc:
    sys.stderr.write("The command failed with an unexpected error. Here is the traceback:\\n"
                     + str(exc) + "\\n" + traceback.format_exc())
    status = 1
sys.exit(status)
'''


def write_az(bin_dir: Path, workdir: Path, subscription_id: str) -> Path:
    """Write ``bin_dir/az`` (executable, run by this Python) and return its path."""
    path = bin_dir / "az"
    text = SCRIPT.format(python=sys.executable, subscription=subscription_id, tenant=TENANT_ID,
                         logged_out=str(workdir / LOGGED_OUT_FLAG), token_cache=TOKEN_CACHE,
                         cache_environment=CACHE_ENVIRONMENT)
    atomic_write(path, text.encode("utf-8"), mode=0o755)
    return path
