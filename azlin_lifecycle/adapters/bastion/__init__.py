"""Azure Bastion's native-client tunnels, owned by the monitor (no ``az``, no local port).

One job per module: :mod:`.discovery` (which Bastion serves a VM, from ARM JSON, and what
keeps it from tunnelling), :mod:`.connection` (TLS to the data plane within a deadline, with
ARM's trust), :mod:`.exchange` (the token exchange over HTTPS), :mod:`.wsstream` (the
WebSocket as the socket paramiko uses) and :mod:`.tunnel` (:class:`BastionTunnels`, the
prober's tunnel opener: the three steps in order, within one deadline).
"""
