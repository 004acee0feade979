"""A real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
kwok) on this machine, from the binaries `make kube-bins` builds: the real-cluster tier's
launcher (`make e2e`, `make kube-up`, the benchmarks on the real apiserver)."""
