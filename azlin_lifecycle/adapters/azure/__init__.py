"""Azure Resource Manager: the compute API (:mod:`.compute`, repairs in :mod:`.repairs`),
its reads and listings (:mod:`.reads`, :mod:`.listing`), what ARM's JSON means
(:mod:`.views`), its errors and limits (:mod:`.errors`, :mod:`.limits`), the login
(:mod:`.login`) and where a VM's SSH answers (:mod:`.network`).

Nothing is imported here: each module loads the SDKs it needs when it is used.
"""
