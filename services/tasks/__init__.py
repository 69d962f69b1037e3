"""Task pods: the Brain-side service, the launchers (local subprocess, Kubernetes Job) and the
runner program (`python -m services.tasks.runner`)."""
