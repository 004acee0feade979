"""`dualcap fleet`: the chooser of a MultiKueue manager cluster.

Kueue's MultiKueue dispatches Workloads from a manager cluster to worker clusters, one
site each; with `multiKueue.dispatcherName: dualcap.io/fleet` in Kueue's configuration it
leaves the choice to an external dispatcher, which writes the Workload's
`status.nominatedClusterNames`. `dualcap fleet` is that dispatcher:

- `workers.py`: the worker clusters, from the manager's MultiKueueClusters and the
  kubeconfig Secrets they name (the same MultiKueue uses), and each worker's offer, read
  from its Sites' `status.offer` (published by the site's own dualcap, `spec.offer`);
- `dispatch.py`: for every Workload waiting to be dispatched, the worker where it earns
  the most (`planning.placement`), written as its nomination, and why, in an Event.

Each worker's own power check still decides admission there.
"""
