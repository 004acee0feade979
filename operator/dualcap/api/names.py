"""The names dualcap's objects carry: API group and version, label, annotation and taint
keys, and the MinerBlock's vocabulary (its annotation, its size limit, its condition
reasons).

Plain strings, no pydantic: the miner agent runs beside the miners on every ASIC
controller and needs these names, not the models (importing the models costs it a
quarter of its memory). `dualcap.api.common` and `dualcap.api.minerblock` re-export them.
"""

from __future__ import annotations

GROUP = "dualcap.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Labels and annotations dualcap reads or writes.
SITE_LABEL = f"{GROUP}/site"
ROLE_LABEL = f"{GROUP}/role"
LEASE_LABEL = f"{GROUP}/lease"
CURTAILED_TAINT_KEY = f"{GROUP}/curtailed"
CURTAILED_AT_ANNOTATION = f"{GROUP}/curtailed-at"
POWER_KW_ANNOTATION = f"{GROUP}/power-kw"
HASHRATE_THS_ANNOTATION = f"{GROUP}/hashrate-ths"
POWER_PER_GPU_KW_ANNOTATION = f"{GROUP}/power-per-gpu-kw"
IDLE_POWER_KW_ANNOTATION = f"{GROUP}/idle-power-kw"
PLANNED_NODE_ANNOTATION = f"{GROUP}/node"  # on a lease pod: the GPU node the plan chose

# Kueue: dualcap's power admission check, and the names it gives and reads.
KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_VERSION = "v1beta2"
KUEUE_API_VERSION = f"{KUEUE_GROUP}/{KUEUE_VERSION}"
POWER_CHECK_CONTROLLER = f"{GROUP}/power"  # an AdmissionCheck's spec.controllerName
# On the pods of a Workload the check admitted (its podSetUpdates): the Workload's name.
WORKLOAD_LABEL = f"{GROUP}/workload"
# On a Workload (copied from its Job by Kueue's labelKeysToCopy): "true" makes it
# preemptible: the check may set Retry on it when the envelope falls.
PREEMPTIBLE_LABEL = f"{GROUP}/preemptible"

# The MinerBlock: the node annotation naming a block's miners, and how many one can hold.
MINERS_ANNOTATION = f"{GROUP}/miners"
MAX_BLOCK_MINERS = 4096  # a container holds a few hundred; refuse what cannot be one block

# Condition reasons the miner agent writes (types: Ready, Reconciling, Stalled).
CONVERGED = "Converged"
CONVERGING = "Converging"
INVALID_MINERS = "InvalidMiners"
NO_MINERS = "NoMiners"
MINERS_UNREACHABLE = "MinersUnreachable"
CONTESTED_MINERS = "ContestedMiners"
COMMAND_FAILED = "CommandFailed"
NODE_UNAVAILABLE = "NodeUnavailable"
