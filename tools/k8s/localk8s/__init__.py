"""Building blocks of tools/k8s/cluster.py: certificates (`pki`), a minimal API client
(`kubeapi`), file and port layout (`layout`), component command lines (`components`), process
control (`processes`) and first-start objects (`bootstrap`)."""
