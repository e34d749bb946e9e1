module tutor.local/k8s/cni

go 1.24.0

require github.com/containernetworking/plugins v1.7.1 // indirect
