// Package guest is the protocol between the vm executor on the host and
// the init program in the guest (package vm/guestinit): what to run goes
// in on the kernel command line, what happens comes back on the serial
// console.
//
// # In: the kernel command line
//
// The executor adds dms.spec=BASE64 (URL alphabet, no padding) of the
// JSON of a Spec: argv, environment, working directory, 9p shares to
// mount, an optional root device, an optional subnet interface. The guest init reads it from
// /proc/cmdline.
//
// # Out: the serial console
//
// The guest init writes lines starting with Prefix; every other line on
// the console is the kernel's (the boot log):
//
//	@@dms:start              the payload is about to run
//	@@dms:o:TEXT             a line of the payload's stdout
//	@@dms:e:TEXT             a line of its stderr
//	@@dms:O:TEXT, @@dms:E:TEXT   the same without a final newline
//	@@dms:exit:CODE          the payload ended with CODE
//	@@dms:exit:CODE:oom      … after the guest kernel's OOM killer hit it
//	@@dms:fail:TEXT          the guest init could not run the payload
//
// The payload's output is always wrapped, so it cannot forge a marker. The
// guest then syncs and reboots, which ends QEMU (-no-reboot).
//
// # Exec: a virtio-serial port
//
// While the payload runs, the guest init also serves `dms deployment
// exec` on the virtio-serial port ExecPort: framed sessions (exec.go),
// each a command started like the payload (its root, environment and
// working directory), with or without a terminal.
package guest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// Prefix starts every line the guest init writes.
const Prefix = "@@dms:"

// The kinds of lines after Prefix.
const (
	Start        = "start"
	Stdout       = "o:"
	Stderr       = "e:"
	StdoutNoEOL  = "O:"
	StderrNoEOL  = "E:"
	Exit         = "exit:"
	Fail         = "fail:"
	OOMSuffix    = ":oom"
	CmdlineParam = "dms.spec"
)

// Spec is what the guest runs.
type Spec struct {
	Args   []string `json:"args"`
	Env    []string `json:"env,omitempty"`
	Dir    string   `json:"dir,omitempty"`
	Mounts []Mount  `json:"mounts,omitempty"`
	// Root, when set, is the block device holding the root filesystem
	// (the job's rootfs image): the payload runs chrooted in it.
	Root string `json:"root,omitempty"`
	// Net, when set, is the guest's interface on its deployment's
	// subnet, configured before the payload starts.
	Net *Net `json:"net,omitempty"`
}

// Net is the guest's subnet interface: the virtio-net device whose MAC
// is MAC, renamed Name, with address Addr and MTU MTU, up; lo is brought
// up too. DNS, when set, is written to the guest's /etc/resolv.conf as
// its nameserver, with the search domain "internal".
type Net struct {
	Name string `json:"name"`
	MAC  string `json:"mac"`
	Addr string `json:"addr"` // 10.77.0.2/24
	MTU  int    `json:"mtu"`
	DNS  string `json:"dns,omitempty"`
}

// Mount is a 9p share (virtio-9p, its mount tag) to mount at Target.
type Mount struct {
	Tag      string `json:"tag"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"ro,omitempty"`
}

// Encode returns the kernel command line parameter for s.
func Encode(s Spec) (string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	return CmdlineParam + "=" + base64.RawURLEncoding.EncodeToString(b), nil
}

// Decode finds the spec in a kernel command line.
func Decode(cmdline string) (Spec, error) {
	var s Spec
	for _, f := range strings.Fields(cmdline) {
		v, ok := strings.CutPrefix(f, CmdlineParam+"=")
		if !ok {
			continue
		}
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil {
			return s, fmt.Errorf("%s: %w", CmdlineParam, err)
		}
		if err := json.Unmarshal(b, &s); err != nil {
			return s, fmt.Errorf("%s: %w", CmdlineParam, err)
		}
		if len(s.Args) == 0 {
			return s, fmt.Errorf("%s: no program to run", CmdlineParam)
		}
		return s, nil
	}
	return s, fmt.Errorf("no %s on the kernel command line", CmdlineParam)
}
