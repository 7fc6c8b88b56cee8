package node

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capabilities the subnets need: CAP_NET_ADMIN to create a TUN,
// CAP_SYS_ADMIN to enter a container's network namespace.
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// subnetSupport says why this machine cannot run subnets, or "" when it
// can: Linux, /dev/net/tun usable, CAP_NET_ADMIN and CAP_SYS_ADMIN. It
// opens the device once and reads /proc/self/status: cheap.
func subnetSupport() string {
	const dev = "/dev/net/tun"
	st, err := os.Stat(dev)
	if err != nil {
		return fmt.Sprintf("no %s", dev)
	}
	if st.Mode()&os.ModeCharDevice == 0 {
		return fmt.Sprintf("%s is not a character device", dev)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Sprintf("%s cannot be opened: %v", dev, err)
	}
	f.Close()
	eff, err := effectiveCaps()
	if err != nil {
		return err.Error()
	}
	var missing []string
	if eff&(1<<capNetAdmin) == 0 {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	if eff&(1<<capSysAdmin) == 0 {
		missing = append(missing, "CAP_SYS_ADMIN")
	}
	if len(missing) > 0 {
		return "the node lacks " + strings.Join(missing, " and ") + " (to create TUN interfaces in containers' network namespaces)"
	}
	return ""
}

// effectiveCaps reads the process's effective capabilities.
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("capabilities: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			c, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("capabilities: CapEff %q: %w", v, err)
			}
			return c, nil
		}
	}
	return 0, fmt.Errorf("capabilities: no CapEff in /proc/self/status")
}
