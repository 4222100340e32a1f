"""Adapters: the code that talks to the outside world (systemd, D-Bus, journald, Azure, SSH)."""
