package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

const pressSeqFile = "button.seq"

// pressCounter hands out button press sequence numbers. With a path it persists the last one,
// so that (mac, seq) stays unique across agent restarts; without, it counts from 1 per process.
type pressCounter struct {
	path string
	mu   sync.Mutex
	last uint64
}

// load reads the last sequence number from path; a missing file means none yet.
func (p *pressCounter) load() error {
	b, err := os.ReadFile(p.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read button press counter: %w", err)
	}
	n, err := parseSeq(b)
	if err != nil {
		return fmt.Errorf("button press counter %s: %w; delete the file to start again from 1", p.path, err)
	}
	p.last = n
	return nil
}

func parseSeq(b []byte) (uint64, error) {
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// atLeast makes sure the next number handed out is above n.
func (p *pressCounter) atLeast(n uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = max(p.last, n)
}

// next returns the next sequence number. It is returned even when persisting it fails, so a
// press is never lost for a full disk; the error says the number may be reused after a restart.
func (p *pressCounter) next() (uint64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last++
	if p.path == "" {
		return p.last, nil
	}
	return p.last, writeFileAtomic(p.path, []byte(strconv.FormatUint(p.last, 10)+"\n"))
}

// writeFileAtomic replaces path by a fully written file (mode 0600), so a power cut cannot
// leave it truncated.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
		return werr
	}
	// The rename itself reaches the disk only with the directory.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
