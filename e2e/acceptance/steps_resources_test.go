package acceptance

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/cucumber/godog"

	"github.com/dmsnet/dms/api"
	"github.com/dmsnet/dms/internal/match"
)

// Steps of resources: onboarding (the capability model) and benchmark
// scores, read from `dms resources -o json`.

func resourceSteps(sc *godog.ScenarioContext) {
	sc.Step(`^the node ([a-z]+) is running with nothing onboarded$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		netOf(w).start(name)
		if s := w.resources(name); s.Onboarded != nil {
			w.home(name).MustRun(w.T, "offboard")
		}
		return nil
	})
	sc.Step(`^([a-z]+)'s node has cpu ([\d.]+), ram (\S+) and disk (\S+) onboarded( and free)?$`, func(ctx context.Context, name, cpu, ram, disk, free string) error {
		w := worldOf(ctx)
		want, err := parseResources(cpu, ram, disk)
		if err != nil {
			return err
		}
		s := w.resources(name)
		if s.Onboarded == nil || !reflect.DeepEqual(s.Onboarded.Resources, want) {
			return fmt.Errorf("%s's node has %+v onboarded, want %+v", name, s.Onboarded, want)
		}
		if free != "" && !reflect.DeepEqual(s.Free, want) {
			return fmt.Errorf("%s's node has %+v free, want %+v", name, s.Free, want)
		}
		return nil
	})
	sc.Step(`^the error names the memory available on ([a-z]+)'s machine$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		avail := match.Bytes(w.resources(name).Available.RAM).String()
		if !strings.Contains(w.last().Stderr, "exceeds available "+avail) {
			return fmt.Errorf("stderr does not name the available %s: %s", avail, w.lastString())
		}
		return nil
	})
	sc.Step(`^([a-z]+)'s node has benchmark scores, each above zero$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		b := w.resources(name).Benchmark
		if b == nil || b.CPUSingle <= 0 || b.CPUMulti <= 0 || b.MemoryMBps <= 0 || b.DiskWriteMBps <= 0 || b.DiskReadMBps <= 0 || b.FsyncP50 <= 0 || b.Version < 1 || b.Time.IsZero() {
			return fmt.Errorf("%s's benchmark = %+v, want every score above zero, a version and a time", name, b)
		}
		w.vals["scores:"+name] = *b
		return nil
	})
	sc.Step(`^([a-z]+)'s node has the same benchmark scores as before$`, func(ctx context.Context, name string) error {
		w := worldOf(ctx)
		before, ok := w.vals["scores:"+name].(api.Scores)
		if !ok {
			return fmt.Errorf("no scores of %s were read before in this scenario", name)
		}
		if b := w.resources(name).Benchmark; b == nil || !reflect.DeepEqual(*b, before) {
			return fmt.Errorf("%s's benchmark = %+v, want %+v", name, b, before)
		}
		return nil
	})
}

// parseResources reads "1", "512MiB", "1GiB" as api.Resources.
func parseResources(cpu, ram, disk string) (api.Resources, error) {
	c, err := strconv.ParseFloat(cpu, 64)
	if err != nil {
		return api.Resources{}, fmt.Errorf("cpu %q: %w", cpu, err)
	}
	r, err := match.ParseBytes(ram)
	if err != nil {
		return api.Resources{}, fmt.Errorf("ram %q: %w", ram, err)
	}
	d, err := match.ParseBytes(disk)
	if err != nil {
		return api.Resources{}, fmt.Errorf("disk %q: %w", disk, err)
	}
	return api.Resources{CPU: c, RAM: uint64(r), Disk: uint64(d)}, nil
}
