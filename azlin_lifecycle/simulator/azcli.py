"""The stand-in ``az`` executable, so the real ``AzureCliCredential`` runs unchanged.

It answers ``az account get-access-token`` (and ``az account show``) for the simulated
subscription. When ``<workdir>/az-logged-out`` exists it fails as the real ``az`` does
when nobody is logged in.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..fsio import atomic_write

TENANT_ID = "00000000-0000-0000-0000-00000000000f"
LOGGED_OUT_FLAG = "az-logged-out"

SCRIPT = '''#!{python}
"""Stand-in for the Azure CLI, written by the azlin-lifecycle simulator."""
import json, os, secrets, sys, time

SUBSCRIPTION = {subscription!r}
TENANT = {tenant!r}
LOGGED_OUT = {logged_out!r}

args = sys.argv[1:]
words = [a for a in args if not a.startswith("-")]
if words[:2] == ["account", "get-access-token"] or words[:2] == ["account", "show"]:
    if os.path.exists(LOGGED_OUT):
        sys.stderr.write("ERROR: Please run 'az login' to setup account.\\n")
        sys.exit(1)
    if words[1] == "show":
        print(json.dumps({{"id": SUBSCRIPTION, "tenantId": TENANT, "name": "azlin simulator",
                          "state": "Enabled", "isDefault": True,
                          "user": {{"name": "simulator@example.invalid", "type": "user"}}}}))
        sys.exit(0)
    expires = int(time.time()) + 3600
    print(json.dumps({{
        "accessToken": "sim." + secrets.token_urlsafe(24),
        "expiresOn": time.strftime("%Y-%m-%d %H:%M:%S.000000", time.localtime(expires)),
        "expires_on": expires,
        "subscription": SUBSCRIPTION,
        "tenant": TENANT,
        "tokenType": "Bearer",
    }}, indent=2))
    sys.exit(0)
if words[:1] == ["version"] or "--version" in args:
    print(json.dumps({{"azure-cli": "2.70.0 (azlin-lifecycle simulator)"}}))
    sys.exit(0)
sys.stderr.write("ERROR: '" + " ".join(words) + "' is misspelled or not recognized by the "
                 "system (this is the azlin-lifecycle simulator's stand-in az).\\n")
sys.exit(2)
'''


def write_az(bin_dir: Path, workdir: Path, subscription_id: str) -> Path:
    """Write ``bin_dir/az`` (executable, run by this Python) and return its path."""
    path = bin_dir / "az"
    text = SCRIPT.format(python=sys.executable, subscription=subscription_id, tenant=TENANT_ID,
                         logged_out=str(workdir / LOGGED_OUT_FLAG))
    atomic_write(path, text.encode("utf-8"), mode=0o755)
    return path
