package resource

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/dmsnet/dms/internal/match"
)

// detectGPUs asks nvidia-smi for NVIDIA cards and rocm-smi for AMD ones,
// falling back to sysfs for AMD. Indices are made unique on the machine:
// NVIDIA cards first in nvidia-smi order, then AMD cards.
func detectGPUs(ctx context.Context, cfg DetectConfig, warn func(string, ...any)) []GPU {
	var out []GPU
	nv, err := nvidiaGPUs(ctx, cfg)
	switch {
	case err == nil:
		out = append(out, nv...)
	case errors.Is(err, exec.ErrNotFound):
	default:
		warn("nvidia-smi: %v", err)
	}
	amd, err := rocmGPUs(ctx, cfg)
	if err != nil {
		if !errors.Is(err, exec.ErrNotFound) {
			warn("rocm-smi: %v (falling back to sysfs)", err)
		}
		amd = sysfsAMDGPUs(cfg.Root)
	}
	out = append(out, amd...)
	for i := range out {
		out[i].Index = i
	}
	return out
}

func nvidiaGPUs(ctx context.Context, cfg DetectConfig) ([]GPU, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	out, err := cfg.Command(ctx, "nvidia-smi", "--query-gpu=index,name,memory.total,uuid,pci.bus_id", "--format=csv,noheader,nounits")
	if err != nil {
		return nil, err
	}
	return parseNvidiaSMI(out)
}

// parseNvidiaSMI reads "0, Tesla T4, 15360, GPU-…, 00000000:00:1E.0" lines
// (memory in MiB).
func parseNvidiaSMI(out []byte) ([]GPU, error) {
	r := csv.NewReader(strings.NewReader(string(out)))
	r.TrimLeadingSpace = true
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("parse nvidia-smi output: %w", err)
	}
	var gpus []GPU
	for _, f := range recs {
		if len(f) < 3 {
			return nil, fmt.Errorf("parse nvidia-smi output: %q: want index, name, memory", strings.Join(f, ","))
		}
		idx, err := strconv.Atoi(strings.TrimSpace(f[0]))
		if err != nil {
			return nil, fmt.Errorf("parse nvidia-smi output: index %q", f[0])
		}
		g := GPU{GPU: match.GPU{Vendor: "nvidia", Model: strings.TrimSpace(f[1])}, VendorIndex: idx, Source: "nvidia-smi"}
		if mib, err := strconv.ParseUint(strings.TrimSpace(f[2]), 10, 44); err == nil {
			g.VRAM = match.Bytes(mib << 20)
		}
		if len(f) > 3 {
			g.UUID = strings.TrimSpace(f[3])
		}
		if len(f) > 4 {
			g.PCI = strings.TrimSpace(f[4])
		}
		gpus = append(gpus, g)
	}
	return gpus, nil
}

func rocmGPUs(ctx context.Context, cfg DetectConfig) ([]GPU, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	out, err := cfg.Command(ctx, "rocm-smi", "--showproductname", "--showmeminfo", "vram", "--showbus", "--json")
	if err != nil {
		return nil, err
	}
	return parseROCmSMI(out)
}

// parseROCmSMI reads rocm-smi --json: {"card0": {"Card series": …,
// "VRAM Total Memory (B)": "…", "PCI Bus": …}, "system": {…}}.
func parseROCmSMI(out []byte) ([]GPU, error) {
	var doc map[string]map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("parse rocm-smi output: %w", err)
	}
	var gpus []GPU
	for k, v := range doc {
		n, ok := strings.CutPrefix(k, "card")
		if !ok {
			continue
		}
		idx, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		str := func(keys ...string) string {
			for _, key := range keys {
				if s, ok := v[key].(string); ok && s != "" {
					return strings.TrimSpace(s)
				}
			}
			return ""
		}
		g := GPU{GPU: match.GPU{Vendor: "amd", Model: str("Card series", "Card SKU", "Card model")}, VendorIndex: idx, Source: "rocm-smi", PCI: str("PCI Bus")}
		if b, err := strconv.ParseUint(str("VRAM Total Memory (B)"), 10, 64); err == nil {
			g.VRAM = match.Bytes(b)
		}
		gpus = append(gpus, g)
	}
	sort.Slice(gpus, func(i, j int) bool { return gpus[i].VendorIndex < gpus[j].VendorIndex })
	return gpus, nil
}

// sysfsAMDGPUs lists /sys/class/drm/cardN whose PCI vendor is AMD (0x1002),
// with VRAM from mem_info_vram_total.
func sysfsAMDGPUs(root string) []GPU {
	cards, _ := filepath.Glob(filepath.Join(root, "/sys/class/drm/card[0-9]*"))
	type card struct {
		n   int
		dir string
	}
	var cs []card
	for _, c := range cards {
		n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(c), "card"))
		if err != nil {
			continue // card0-DP-1 and other connectors
		}
		cs = append(cs, card{n, c})
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].n < cs[j].n })
	var gpus []GPU
	for _, c := range cs {
		dev := filepath.Join(c.dir, "device")
		if v, _ := os.ReadFile(filepath.Join(dev, "vendor")); strings.TrimSpace(string(v)) != "0x1002" {
			continue
		}
		g := GPU{GPU: match.GPU{Vendor: "amd"}, VendorIndex: len(gpus), Source: "sysfs"}
		if b, err := os.ReadFile(filepath.Join(dev, "mem_info_vram_total")); err == nil {
			if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
				g.VRAM = match.Bytes(v)
			}
		}
		if b, err := os.ReadFile(filepath.Join(dev, "product_name")); err == nil && strings.TrimSpace(string(b)) != "" {
			g.Model = strings.TrimSpace(string(b))
		} else if b, err := os.ReadFile(filepath.Join(dev, "device")); err == nil {
			g.Model = "AMD GPU " + strings.TrimSpace(string(b))
		}
		if target, err := os.Readlink(dev); err == nil {
			g.PCI = filepath.Base(target)
		}
		gpus = append(gpus, g)
	}
	return gpus
}
