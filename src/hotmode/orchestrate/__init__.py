"""Past one machine: the prod configuration for existing orchestrators, and their checks.

`swarm` renders the stack file and `stack` deploys, inspects and verifies it on Docker Swarm,
`swarm_audit` lints it; `k8s` renders Kubernetes manifests and `k8s_audit` lints them; `units`
reads the durations and sizes both take from Compose.
"""
