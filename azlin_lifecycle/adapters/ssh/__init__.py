"""SSH to the VMs: the prober (:mod:`.prober`), its tuned paramiko transport
(:mod:`.transport`), pinned host keys (:mod:`.known_hosts`), what a failure means
(:mod:`.faults`) and the one deadline of a probe (:mod:`.deadline`).

Nothing is imported here: paramiko loads with the prober.
"""
