package hoststat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Container engines' API sockets, tried in this order when none is configured.
var DefaultSockets = []string{"/var/run/docker.sock", "/run/podman/podman.sock"}

// Container is one container as the engine lists it, with its CPU and memory when running.
type Container struct {
	ID, Name, Image, State string
	CPUPercent             *float64 // of one core, since the previous Read; nil on the first
	MemBytes               *uint64  // as docker stats shows it: usage without the inactive file cache
}

// Engine reads the containers of a Docker or Podman engine through its API socket, with GET
// requests only. It keeps each container's previous CPU counters to compute CPU % between
// two reads. It is safe for concurrent use.
type Engine struct {
	Socket string
	client *http.Client

	mu   sync.Mutex
	prev map[string]cpuSample
}

type cpuSample struct{ container, system uint64 }

// NewEngine returns a reader of the engine at socket.
func NewEngine(socket string) *Engine {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns: 1,
	}
	return &Engine{Socket: socket, client: &http.Client{Transport: tr, Timeout: 5 * time.Second}, prev: map[string]cpuSample{}}
}

// FindEngine returns the first of sockets that exists, or "" when there is none: the agent
// then reads no containers.
func FindEngine(sockets []string) string {
	for _, s := range sockets {
		if fi, err := os.Stat(s); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return s
		}
	}
	return ""
}

// maxContainers bounds what is read and reported: a Pi running hundreds of containers reports
// the first ones the engine lists.
const maxContainers = 32

// Read lists the containers and reads each running one's stats.
func (e *Engine) Read(ctx context.Context) ([]Container, error) {
	var list []struct {
		ID    string   `json:"Id"`
		Names []string `json:"Names"`
		Image string   `json:"Image"`
		State string   `json:"State"`
	}
	if err := e.get(ctx, "/containers/json?all=1", &list); err != nil {
		return nil, err
	}
	var out []Container
	var errs []error
	seen := map[string]bool{}
	for _, c := range list {
		if len(out) == maxContainers {
			break
		}
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		id := c.ID
		if len(id) > 12 {
			id = id[:12]
		}
		x := Container{ID: id, Name: name, Image: c.Image, State: strings.ToLower(c.State)}
		if x.State == "running" {
			seen[c.ID] = true
			if err := e.stats(ctx, c.ID, &x); err != nil {
				errs = append(errs, fmt.Errorf("container %s: %w", name, err))
			}
		}
		out = append(out, x)
	}
	e.mu.Lock()
	for id := range e.prev {
		if !seen[id] {
			delete(e.prev, id)
		}
	}
	e.mu.Unlock()
	return out, errors.Join(errs...)
}

// stats reads one running container's CPU and memory (one-shot: no second sample waited for).
func (e *Engine) stats(ctx context.Context, id string, x *Container) error {
	var s struct {
		CPU struct {
			Usage struct {
				Total uint64 `json:"total_usage"`
			} `json:"cpu_usage"`
			System uint64 `json:"system_cpu_usage"`
			Online int    `json:"online_cpus"`
		} `json:"cpu_stats"`
		Mem struct {
			Usage uint64            `json:"usage"`
			Stats map[string]uint64 `json:"stats"`
		} `json:"memory_stats"`
	}
	if err := e.get(ctx, "/containers/"+id+"/stats?stream=false&one-shot=true", &s); err != nil {
		return err
	}
	if s.Mem.Usage > 0 {
		// docker stats: cgroup v2's inactive_file, v1's total_inactive_file.
		inactive := s.Mem.Stats["inactive_file"]
		if v, ok := s.Mem.Stats["total_inactive_file"]; ok {
			inactive = v
		}
		used := s.Mem.Usage - min(inactive, s.Mem.Usage)
		x.MemBytes = &used
	}
	cur := cpuSample{container: s.CPU.Usage.Total, system: s.CPU.System}
	e.mu.Lock()
	prev, ok := e.prev[id]
	e.prev[id] = cur
	e.mu.Unlock()
	if ok && cur.system > prev.system && cur.container >= prev.container && s.CPU.Online > 0 {
		p := 100 * float64(cur.container-prev.container) / float64(cur.system-prev.system) * float64(s.CPU.Online)
		x.CPUPercent = &p
	}
	return nil
}

// get GETs path from the engine and decodes its JSON answer into v.
func (e *Engine) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://engine"+path, nil)
	if err != nil {
		return err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("container engine at %s: %w (is the agent in the docker group, or is a read-only socket proxy there? docs/deploy.md)", e.Socket, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("container engine at %s: GET %s: %s: %s", e.Socket, path, resp.Status, strings.TrimSpace(string(body[:min(len(body), 200)])))
	}
	return json.Unmarshal(body, v)
}
