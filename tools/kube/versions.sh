# The pinned versions of the real-cluster tier (sourced by build.sh; read by the launcher).
KUBERNETES_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
HELM_VERSION=v4.3.2
KUEUE_VERSION=v0.17.0
