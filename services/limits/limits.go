// Package limits finds the memory and CPU a service may use, from its cgroup (v2, then v1) or,
// outside a container, from configured fallbacks, so that alert rules can compare usage to the
// limit the kernel will actually enforce.
package limits

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Source says where a limit came from.
type Source string

const (
	SourceCgroupV2 Source = "cgroup-v2"
	SourceCgroupV1 Source = "cgroup-v1"
	SourceFlag     Source = "flag"
)

// Limits is what the service may use.
type Limits struct {
	MemoryBytes  int64
	MemorySource Source
	CPUCores     float64
	CPUSource    Source
}

// v1 reports "no limit" as a page-aligned huge number rather than a keyword.
const v1Unlimited = int64(1) << 60

// Detect reads the cgroup limits under root (normally "/"), taking the smallest limit on the
// way from the process' own cgroup up to the hierarchy's root, since every ancestor's limit
// applies too. Where no cgroup limits a resource, the fallback is used.
func Detect(root string, fallbackMemory int64, fallbackCPU float64) Limits {
	l := Limits{MemoryBytes: fallbackMemory, MemorySource: SourceFlag, CPUCores: fallbackCPU, CPUSource: SourceFlag}
	groups := readProcCgroup(root)
	if mem, ok := v2Memory(root, groups[""]); ok {
		l.MemoryBytes, l.MemorySource = mem, SourceCgroupV2
	} else if mem, ok := v1Memory(root, groups["memory"]); ok {
		l.MemoryBytes, l.MemorySource = mem, SourceCgroupV1
	}
	if cpu, ok := v2CPU(root, groups[""]); ok {
		l.CPUCores, l.CPUSource = cpu, SourceCgroupV2
	} else if cpu, ok := v1CPU(root, groups["cpu"]); ok {
		l.CPUCores, l.CPUSource = cpu, SourceCgroupV1
	}
	return l
}

// readProcCgroup maps each controller ("" for the v2 unified hierarchy) to the process' path.
func readProcCgroup(root string) map[string]string {
	out := map[string]string{}
	f, err := os.Open(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return out
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out
}

// dirsUp lists mount/path, its ancestors up to mount, and mount itself: in a container with its
// own cgroup namespace the path is "/" and the limits sit at the mount point.
func dirsUp(mount, path string) []string {
	var dirs []string
	p := filepath.Clean("/" + path)
	for {
		dirs = append(dirs, filepath.Join(mount, p))
		if p == "/" {
			return dirs
		}
		p = filepath.Dir(p)
	}
}

// smallest returns the smallest limit read finds in dirs, since every one of them applies.
func smallest[T int64 | float64](dirs []string, read func(dir string) (T, bool)) (T, bool) {
	var best T
	found := false
	for _, d := range dirs {
		if v, ok := read(d); ok && (!found || v < best) {
			best, found = v, true
		}
	}
	return best, found
}

func v2Memory(root, path string) (int64, bool) {
	return smallest(dirsUp(filepath.Join(root, "sys/fs/cgroup"), path), func(d string) (int64, bool) {
		v, err := readTrimmed(filepath.Join(d, "memory.max"))
		if err != nil || v == "max" {
			return 0, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil && n > 0
	})
}

func v2CPU(root, path string) (float64, bool) {
	return smallest(dirsUp(filepath.Join(root, "sys/fs/cgroup"), path), func(d string) (float64, bool) {
		v, err := readTrimmed(filepath.Join(d, "cpu.max"))
		if err != nil {
			return 0, false
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[0] == "max" {
			return 0, false
		}
		cores, err := quotaCores(f[0], f[1])
		return cores, err == nil
	})
}

func v1Memory(root, path string) (int64, bool) {
	return smallest(dirsUp(filepath.Join(root, "sys/fs/cgroup/memory"), path), func(d string) (int64, bool) {
		v, err := readTrimmed(filepath.Join(d, "memory.limit_in_bytes"))
		if err != nil {
			return 0, false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil && n > 0 && n < v1Unlimited
	})
}

func v1CPU(root, path string) (float64, bool) {
	// The cpu controller is mounted alone on some hosts and together with cpuacct on others.
	var dirs []string
	for _, mount := range []string{"sys/fs/cgroup/cpu", "sys/fs/cgroup/cpu,cpuacct"} {
		dirs = append(dirs, dirsUp(filepath.Join(root, mount), path)...)
	}
	return smallest(dirs, func(d string) (float64, bool) {
		q, err1 := readTrimmed(filepath.Join(d, "cpu.cfs_quota_us"))
		p, err2 := readTrimmed(filepath.Join(d, "cpu.cfs_period_us"))
		if err1 != nil || err2 != nil || strings.HasPrefix(q, "-") {
			return 0, false
		}
		cores, err := quotaCores(q, p)
		return cores, err == nil
	})
}

func quotaCores(quota, period string) (float64, error) {
	q, err := strconv.ParseFloat(quota, 64)
	if err != nil {
		return 0, err
	}
	p, err := strconv.ParseFloat(period, 64)
	if err != nil {
		return 0, err
	}
	if q <= 0 || p <= 0 {
		return 0, errors.New("non-positive quota or period")
	}
	return q / p, nil
}

func readTrimmed(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// String is for the start-up log line.
func (l Limits) String() string {
	return fmt.Sprintf("memory=%dB (%s) cpu=%.2f cores (%s)", l.MemoryBytes, l.MemorySource, l.CPUCores, l.CPUSource)
}
