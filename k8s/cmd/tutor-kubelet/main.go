// Command tutor-kubelet serves the kubelet API (port 10250) of one lab node: the API server's
// `exec`, `attach`, `portForward` and `containerLogs` requests. The stream protocols (SPDY and
// WebSocket, every version kubectl speaks) are the kubelet's own, from
// k8s.io/kubelet/pkg/cri/streaming; where a container runs, its logs and its stdin come from
// the node agent (`tutor lab node-agent`) over its unix socket. See docs/architecture.md.
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"
	remotecommandconsts "k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/kubelet/pkg/cri/streaming/portforward"
	remotecommandserver "k8s.io/kubelet/pkg/cri/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

const (
	idleTimeout     = 4 * time.Hour
	creationTimeout = remotecommandconsts.DefaultStreamCreationTimeout
)

// agent is the node agent's socket.
type agent struct{ socket string }

type answer struct {
	Error string   `json:"error"`
	NsDir string   `json:"ns_dir"`
	Pid   int      `json:"pid"`
	Env   []string `json:"env"`
	Cwd   string   `json:"cwd"`
	Tty   bool     `json:"tty"`
}

// call sends one request; the connection stays open for the streams that follow the answer.
func (a *agent) call(req map[string]any) (net.Conn, *bufio.Reader, *answer, error) {
	c, err := net.Dial("unix", a.socket)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("node agent: %w", err)
	}
	line, _ := json.Marshal(req)
	if _, err := c.Write(append(line, '\n')); err != nil {
		c.Close()
		return nil, nil, nil, fmt.Errorf("node agent: %w", err)
	}
	r := bufio.NewReader(c)
	text, err := r.ReadBytes('\n')
	if err != nil {
		c.Close()
		return nil, nil, nil, fmt.Errorf("node agent: %w", err)
	}
	var ans answer
	if err := json.Unmarshal(text, &ans); err != nil {
		c.Close()
		return nil, nil, nil, fmt.Errorf("node agent answer: %w", err)
	}
	if ans.Error != "" {
		c.Close()
		return nil, nil, nil, errors.New(ans.Error)
	}
	return c, r, &ans, nil
}

func splitName(name string) (string, string) {
	ns, pod, _ := strings.Cut(name, "/")
	return ns, pod
}

// ExecInContainer runs cmd in the container's namespaces with its environment.
func (a *agent) ExecInContainer(ctx context.Context, name string, _ types.UID, container string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	ns, pod := splitName(name)
	c, _, ans, err := a.call(map[string]any{"op": "container", "namespace": ns, "pod": pod, "container": container})
	if err != nil {
		return err
	}
	c.Close()
	// The working directory is entered inside the pod's mount namespace (coreutils' env -C):
	// nsenter's --wd opens it before entering, which leaves the process in the node's tree.
	args := []string{"--net=" + ans.NsDir + "/net", "--mount=" + ans.NsDir + "/mnt", "--uts=" + ans.NsDir + "/uts", "--", "/usr/bin/env", "-C", ans.Cwd, "--"}
	p := exec.CommandContext(ctx, "nsenter", append(args, cmd...)...)
	p.Env = ans.Env
	if tty {
		err = runWithPty(p, in, out, resize)
	} else {
		if in != nil {
			p.Stdin = in
		}
		p.Stdout, p.Stderr = out, errw
		err = p.Run()
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code := exitErr.ExitCode()
		if code < 0 {
			code = 137
		}
		return utilexec.CodeExitError{Err: err, Code: code}
	}
	return err
}

// runWithPty runs p on a new pseudo-terminal, copying in/out and applying resizes.
func runWithPty(p *exec.Cmd, in io.Reader, out io.Writer, resize <-chan remotecommand.TerminalSize) error {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		return err
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		return err
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	p.Stdin, p.Stdout, p.Stderr = slave, slave, slave
	p.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := p.Start(); err != nil {
		slave.Close()
		return err
	}
	slave.Close()
	go func() {
		for size := range resize {
			ws := &unix.Winsize{Row: size.Height, Col: size.Width}
			_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
		}
	}()
	if in != nil {
		go func() { _, _ = io.Copy(master, in) }()
	}
	done := make(chan struct{})
	go func() { _, _ = io.Copy(out, master); close(done) }()
	err = p.Wait()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	return err
}

// AttachContainer streams the container's output from now on and feeds its stdin.
func (a *agent) AttachContainer(ctx context.Context, name string, _ types.UID, container string, in io.Reader, out, errw io.WriteCloser, _ bool, _ <-chan remotecommand.TerminalSize) error {
	ns, pod := splitName(name)
	req := map[string]any{"namespace": ns, "pod": pod, "container": container}
	if in != nil {
		req["op"] = "stdin"
		c, _, _, err := a.call(req)
		if err != nil {
			return err
		}
		go func() { _, _ = io.Copy(c, in); c.(*net.UnixConn).CloseWrite() }()
		defer c.Close()
	}
	if out == nil {
		out = errw
	}
	if out == nil {
		<-ctx.Done()
		return nil
	}
	req["op"], req["follow"], req["tail"] = "logs", true, 0
	c, r, _, err := a.call(req)
	if err != nil {
		return err
	}
	defer c.Close()
	go func() { <-ctx.Done(); c.Close() }()
	_, err = io.Copy(out, r)
	return err
}

// PortForward connects stream to port on the pod's loopback, inside its network namespace.
func (a *agent) PortForward(ctx context.Context, name string, _ types.UID, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	ns, pod := splitName(name)
	c, _, ans, err := a.call(map[string]any{"op": "sandbox", "namespace": ns, "pod": pod})
	if err != nil {
		return err
	}
	c.Close()
	conn, err := dialIn(ans.NsDir+"/net", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("failed to connect to localhost:%d inside namespace of pod %s: %w", port, name, err)
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(conn, stream); conn.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(stream, conn); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// dialIn opens a TCP connection from inside the network namespace at nsPath: the socket is
// created on a thread that entered it, and stays there.
func dialIn(nsPath, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	target, err := os.Open(nsPath)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	conn, dialErr := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is in the wrong namespace: leave it locked, Go retires it.
		return conn, dialErr
	}
	runtime.UnlockOSThread()
	return conn, dialErr
}

func (a *agent) serveLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := map[string]any{
		"op": "logs", "namespace": r.PathValue("ns"), "pod": r.PathValue("pod"), "container": r.PathValue("container"),
		"follow": q.Get("follow") == "true", "previous": q.Get("previous") == "true", "timestamps": q.Get("timestamps") == "true",
	}
	for param, key := range map[string]string{"tailLines": "tail", "limitBytes": "limit_bytes"} {
		if v := q.Get(param); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				http.Error(w, fmt.Sprintf("invalid %s %q", param, v), http.StatusBadRequest)
				return
			}
			req[key] = n
		}
	}
	if v := q.Get("sinceSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			http.Error(w, fmt.Sprintf("invalid sinceSeconds %q", v), http.StatusBadRequest)
			return
		}
		req["since"] = time.Now().Add(-time.Duration(n) * time.Second).UTC().Format(time.RFC3339Nano)
	} else if v := q.Get("sinceTime"); v != "" {
		req["since"] = v
	}
	c, rd, _, err := a.call(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	defer c.Close()
	go func() { <-r.Context().Done(); c.Close() }()
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32*1024)
	for {
		n, err := rd.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// selfSigned makes the serving certificate for the node's address.
func selfSigned(ip net.IP, host string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: host + "@" + strconv.FormatInt(time.Now().Unix(), 10)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{ip},
		DNSNames:     []string{host},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func main() {
	listen := flag.String("listen", "", "address:port to serve on (the node's IP, port 10250)")
	socket := flag.String("agent-socket", "", "the node agent's unix socket")
	node := flag.String("node", "", "the node's name (serving certificate)")
	certFile := flag.String("tls-cert-file", "", "serving certificate (default: a self-signed one)")
	keyFile := flag.String("tls-private-key-file", "", "serving certificate's key")
	clientCA := flag.String("client-ca-file", "", "clients (the API server) must present a certificate from this CA")
	flag.Parse()
	if *listen == "" || *socket == "" || *node == "" {
		fmt.Fprintln(os.Stderr, "usage: tutor-kubelet --listen IP:PORT --agent-socket PATH --node NAME")
		os.Exit(2)
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tutor-kubelet: --listen %q: %v\n", *listen, err)
		os.Exit(2)
	}
	var cert tls.Certificate
	if *certFile != "" {
		cert, err = tls.LoadX509KeyPair(*certFile, *keyFile)
	} else {
		cert, err = selfSigned(net.ParseIP(host), *node)
	}
	if err != nil {
		log.Fatalf("tutor-kubelet: serving certificate: %v", err)
	}
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if *clientCA != "" {
		pem, err := os.ReadFile(*clientCA)
		if err != nil {
			log.Fatalf("tutor-kubelet: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			log.Fatalf("tutor-kubelet: %s holds no certificate", *clientCA)
		}
		tlsConfig.ClientCAs, tlsConfig.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	a := &agent{socket: *socket}
	mux := http.NewServeMux()
	exec := func(w http.ResponseWriter, r *http.Request) {
		opts, err := remotecommandserver.NewOptions(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		name := r.PathValue("ns") + "/" + r.PathValue("pod")
		remotecommandserver.ServeExec(w, r, a, name, types.UID(r.PathValue("uid")), r.PathValue("container"), r.URL.Query()["command"], opts, idleTimeout, creationTimeout, remotecommandconsts.SupportedStreamingProtocols)
	}
	attach := func(w http.ResponseWriter, r *http.Request) {
		opts, err := remotecommandserver.NewOptions(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		name := r.PathValue("ns") + "/" + r.PathValue("pod")
		remotecommandserver.ServeAttach(w, r, a, name, types.UID(r.PathValue("uid")), r.PathValue("container"), opts, idleTimeout, creationTimeout, remotecommandconsts.SupportedStreamingProtocols)
	}
	forward := func(w http.ResponseWriter, r *http.Request) {
		opts, err := portforward.NewV4Options(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		name := r.PathValue("ns") + "/" + r.PathValue("pod")
		portforward.ServePortForward(w, r, a, name, types.UID(r.PathValue("uid")), opts, idleTimeout, creationTimeout, portforward.SupportedProtocols)
	}
	for _, prefix := range []string{"/exec/{ns}/{pod}", "/exec/{ns}/{pod}/{uid}"} {
		mux.HandleFunc(prefix+"/{container}", exec)
	}
	for _, prefix := range []string{"/attach/{ns}/{pod}", "/attach/{ns}/{pod}/{uid}"} {
		mux.HandleFunc(prefix+"/{container}", attach)
	}
	mux.HandleFunc("/portForward/{ns}/{pod}", forward)
	mux.HandleFunc("/portForward/{ns}/{pod}/{uid}", forward)
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", a.serveLogs)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := &http.Server{Addr: *listen, Handler: mux, TLSConfig: tlsConfig}
	if err := srv.ListenAndServeTLS("", ""); err != nil {
		log.Fatalf("tutor-kubelet: %v", err)
	}
}
