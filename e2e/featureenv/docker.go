//go:build linux

package featureenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/dmsnet/dms/internal/devnet"
)

// Config.Docker: the nodes run docker workloads on this machine's engine,
// as siblings of their own containers, and can put them on subnets.

// dockerSocketPath is the engine's socket on this machine: $DOCKER_HOST
// when it is a unix socket, else Docker's default.
func dockerSocketPath() string {
	if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok && h != "" {
		return h
	}
	return "/var/run/docker.sock"
}

// jobsLock is the docker executor's lock on its job network (a file in
// the temporary directory): shared with the nodes, so that they and any
// dms on this machine take the same lock.
var jobsLock = filepath.Join(os.TempDir(), "dms-jobs-network.lock")

// dockerSettings are the nodes' settings for the docker executor: the
// engine's socket at the same path in the container, and no block list
// (its rules need iptables, which the node image lacks).
func dockerSettings() []devnet.Setting {
	return []devnet.Setting{
		{Key: "executor.docker.host", Value: "unix:///var/run/docker.sock"},
		{Key: "executor.block_networks", Value: ""},
	}
}

// withDocker gives a node's container what the docker executor and the
// subnets need.
func withDocker(hc *container.HostConfig) error {
	sock := dockerSocketPath()
	if _, err := os.Stat(sock); err != nil {
		return fmt.Errorf("%w: Config.Docker: the engine's socket: %v", ErrUnsupported, err)
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("%w: Config.Docker: %v", ErrUnsupported, err)
	}
	f, err := os.OpenFile(jobsLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("job network lock: %w", err)
	}
	f.Close()
	hc.Binds = append(hc.Binds, sock+":/var/run/docker.sock", jobsLock+":/tmp/dms-jobs-network.lock")
	hc.PidMode = "host"
	hc.CapAdd = append(hc.CapAdd, "NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE")
	// /proc/sys writable (--security-opt systempaths=unconfined): the
	// subnet interface's IPv6 is turned off through it.
	hc.MaskedPaths, hc.ReadonlyPaths = []string{}, []string{}
	hc.Resources.Devices = append(hc.Resources.Devices, container.DeviceMapping{
		PathOnHost: "/dev/net/tun", PathInContainer: "/dev/net/tun", CgroupPermissions: "rwm"})
	return nil
}

// labelDMSNode is the label the docker executor of a node puts on its
// containers (allocation.LabelNode): the node's peer ID.
const labelDMSNode = "dms.node"

// removeWorkloads removes the containers the nodes started on the engine.
func (e *Env) removeWorkloads(ctx context.Context) error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range e.nodes {
		if n.PeerID == "" {
			continue
		}
		list, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", labelDMSNode+"="+n.PeerID)})
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s's containers: %w", n.Name, err))
			continue
		}
		for _, c := range list.Items {
			wg.Go(func() {
				if _, err := e.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
					mu.Lock()
					errs = append(errs, fmt.Errorf("remove %s's container %s: %w", n.Name, c.ID[:12], err))
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}
