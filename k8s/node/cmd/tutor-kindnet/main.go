// Command tutor-kindnet is the default CNI of the tutor kind node image, in the role kind's
// kindnetd plays (a DaemonSet on the host network of every node): it writes this node's CNI
// configuration (ptp veth pairs, host-local addresses from the node's spec.podCIDR, portmap
// for hostPort), routes every other node's pod range through that node's InternalIP, and
// masquerades what pods send outside the cluster's pod range.
//
// Environment: NODE_NAME (the downward API's spec.nodeName), POD_SUBNET (the cluster's pod
// range, templated in by kind), CONTROL_PLANE_ENDPOINT (host:port of the API server, set by
// kind, so that the network comes up before kube-proxy programs the service address).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const confPath = "/etc/cni/net.d/10-tutor-kindnet.conflist"

func main() {
	node := os.Getenv("NODE_NAME")
	podSubnet := os.Getenv("POD_SUBNET")
	if node == "" || podSubnet == "" {
		fatal("NODE_NAME and POD_SUBNET must be set")
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		fatal("in-cluster config: %v", err)
	}
	if ep := os.Getenv("CONTROL_PLANE_ENDPOINT"); ep != "" {
		cfg.Host = "https://" + ep
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fatal("client: %v", err)
	}
	logf("node %s, pod subnet %s, API server %s", node, podSubnet, cfg.Host)
	for {
		if err := sync(client, node, podSubnet); err != nil {
			logf("sync: %v", err)
		}
		time.Sleep(5 * time.Second)
	}
}

func sync(client kubernetes.Interface, self, podSubnet string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		if len(cidrs) == 0 {
			continue
		}
		if n.Name == self {
			if err := writeConf(cidrs); err != nil {
				return err
			}
			continue
		}
		for _, c := range cidrs {
			if err := route(c, n); err != nil {
				logf("route %s via node %s: %v", c, n.Name, err)
			}
		}
	}
	return masquerade(podSubnet)
}

// writeConf writes the CNI configuration for this node's pod ranges, only when it changes.
func writeConf(cidrs []string) error {
	var ranges [][]map[string]string
	for _, c := range cidrs {
		ranges = append(ranges, []map[string]string{{"subnet": c}})
	}
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "tutor-kindnet",
		"plugins": []any{
			map[string]any{
				"type":   "ptp",
				"ipMasq": false,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": "/run/cni-ipam-state",
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"ranges":  ranges,
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(confPath); err == nil && bytes.Equal(old, data) {
		return nil
	}
	tmp := filepath.Join(filepath.Dir(confPath), ".tutor-kindnet.tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	logf("writing %s for %v", confPath, cidrs)
	return os.Rename(tmp, confPath)
}

// route sends the pod range of another node through that node's InternalIP.
func route(cidr string, n *v1.Node) error {
	_, dst, err := net.ParseCIDR(cidr)
	if err != nil {
		return err
	}
	var gw net.IP
	for _, a := range n.Status.Addresses {
		ip := net.ParseIP(a.Address)
		if a.Type == v1.NodeInternalIP && ip != nil && (ip.To4() == nil) == (dst.IP.To4() == nil) {
			gw = ip
			break
		}
	}
	if gw == nil {
		return fmt.Errorf("no InternalIP of the range's family")
	}
	return netlink.RouteReplace(&netlink.Route{Dst: dst, Gw: gw})
}

// masquerade keeps one nat chain: pod traffic to the pod range keeps its address, the rest
// leaves with the node's.
func masquerade(podSubnet string) error {
	rules := "*nat\n:TUTOR-KINDNET-MASQ - [0:0]\n" +
		"-A TUTOR-KINDNET-MASQ -d " + podSubnet + " -j RETURN\n" +
		"-A TUTOR-KINDNET-MASQ -m addrtype --dst-type LOCAL -j RETURN\n" +
		"-A TUTOR-KINDNET-MASQ -j MASQUERADE\nCOMMIT\n"
	cmd := exec.Command("iptables-restore", "--noflush")
	cmd.Stdin = bytes.NewBufferString(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore: %v: %s", err, out)
	}
	jump := func(op string) *exec.Cmd {
		return exec.Command("iptables", "-t", "nat", op, "POSTROUTING", "-s", podSubnet, "-j", "TUTOR-KINDNET-MASQ")
	}
	if jump("-C").Run() == nil {
		return nil
	}
	if out, err := jump("-A").CombinedOutput(); err != nil {
		return fmt.Errorf("iptables -A POSTROUTING: %v: %s", err, out)
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().UTC().Format(time.RFC3339)+" tutor-kindnet: "+format+"\n", args...)
}

func fatal(format string, args ...any) {
	logf(format, args...)
	os.Exit(1)
}
