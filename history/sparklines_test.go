package history

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pirack/pirack/topics"
)

// line formats a sparkline as "v v - v", "-" for a bucket without data.
func line(vs []*float64) string {
	out := ""
	for i, v := range vs {
		if i > 0 {
			out += " "
		}
		if v == nil {
			out += "-"
		} else {
			out += fmt.Sprint(*v)
		}
	}
	return out
}

func TestSparklines(t *testing.T) {
	clock := &fakeClock{now: t0.Add(time.Hour)}
	s := openStore(t, "", clock, true, nil)
	busy, sparse, silent := mac, "dca632000001", "dca632000002"
	// busy: two samples a minute over the hour, i and i+0.5 in minute i (mean i+0.25).
	for i := range 60 {
		s.Add(busy, metrics(t0.Add(time.Duration(i)*time.Minute), float64(i)))
		s.Add(busy, metrics(t0.Add(time.Duration(i)*time.Minute+30*time.Second), float64(i)+0.5))
	}
	// sparse: minutes 10 and 20 only, and samples just outside the range.
	s.Add(sparse, metrics(t0.Add(10*time.Minute+5*time.Second), 7))
	s.Add(sparse, metrics(t0.Add(20*time.Minute), 9))
	s.Add(sparse, metrics(t0.Add(-time.Second), 1000))
	s.Add(sparse, metrics(t0.Add(time.Hour), 1000))
	// silent: data only before the range.
	s.Add(silent, metrics(t0.Add(-2*time.Minute), 1))
	// A row supply and a metered Pi: watts of Pis only.
	s.AddPower("a", topics.Power{V: topics.Version, TS: t0, Watts: f64(15)})
	s.AddPiPower(busy, topics.Power{V: topics.Version, TS: t0, Watts: f64(1.5)})
	flush(t, s)

	get := func(metric string, from, to time.Time, buckets int) map[string][]*float64 {
		t.Helper()
		got, err := s.Sparklines(t.Context(), metric, from, to, buckets)
		if err != nil {
			t.Fatal(err)
		}
		for src, vs := range got {
			if len(vs) != buckets {
				t.Errorf("%s: %d values, want %d", src, len(vs), buckets)
			}
		}
		return got
	}

	// A bucket a minute.
	got := get(MetricLoad1, t0, t0.Add(time.Hour), 60)
	if len(got) != 2 || got[silent] != nil {
		t.Errorf("sources %v, want busy and sparse only", keys(got))
	}
	for i, v := range got[busy] {
		if v == nil || *v != float64(i)+0.25 {
			t.Errorf("busy minute %d = %v, want %v", i, v, float64(i)+0.25)
		}
	}
	want := make([]*float64, 60)
	want[10], want[20] = f64(7), f64(9)
	if line(got[sparse]) != line(want) {
		t.Errorf("sparse = %s\nwant     %s", line(got[sparse]), line(want))
	}

	// Ten-minute buckets: the mean of every sample in each.
	got = get(MetricLoad1, t0, t0.Add(time.Hour), 6)
	if g, w := line(got[busy]), "4.75 14.75 24.75 34.75 44.75 54.75"; g != w {
		t.Errorf("busy by 10 min = %s, want %s", g, w)
	}
	if g, w := line(got[sparse]), "- 7 9 - - -"; g != w {
		t.Errorf("sparse by 10 min = %s, want %s", g, w)
	}

	// Watts: the metered Pi, not the row supply.
	if got := get(MetricWatts, t0, t0.Add(time.Hour), 1); len(got) != 1 || line(got[busy]) != "1.5" {
		t.Errorf("watts = %v, want only %s at 1.5", keys(got), busy)
	}
	// No sample at all: an empty map, not an error.
	if got := get(MetricCPUTempC, t0, t0.Add(time.Hour), 60); len(got) != 0 {
		t.Errorf("a metric nobody sent: %v, want none", keys(got))
	}

	for _, c := range []struct {
		name     string
		metric   string
		from, to time.Time
		buckets  int
	}{
		{"no buckets", MetricLoad1, t0, t0.Add(time.Hour), 0},
		{"too many buckets", MetricLoad1, t0, t0.Add(48 * time.Hour), MaxSparkBuckets + 1},
		{"narrower than a minute", MetricLoad1, t0, t0.Add(time.Hour), 61},
		{"empty range", MetricLoad1, t0, t0, 1},
		{"to before from", MetricLoad1, t0, t0.Add(-time.Hour), 1},
	} {
		if _, err := s.Sparklines(t.Context(), c.metric, c.from, c.to, c.buckets); err == nil {
			t.Errorf("%s: want an error", c.name)
		}
	}
	if _, err := s.Sparklines(t.Context(), "load_42", t0, t0.Add(time.Hour), 60); !errors.Is(err, ErrUnknownMetric) {
		t.Errorf("unknown metric: %v, want ErrUnknownMetric", err)
	}
}

// TestSparklinesCurrentMinute: the minute in progress is in the last bucket as soon as its
// points are committed; the 1-minute tier does not lag behind the raw one.
func TestSparklinesCurrentMinute(t *testing.T) {
	now := t0.Add(30*time.Minute + 20*time.Second)
	s := openStore(t, "", &fakeClock{now: now}, true, nil)
	s.Add(mac, metrics(t0.Add(29*time.Minute), 1))
	s.Add(mac, metrics(t0.Add(30*time.Minute+5*time.Second), 2))
	flush(t, s)
	s.Add(mac, metrics(t0.Add(30*time.Minute+15*time.Second), 4))
	flush(t, s)
	got, err := s.Sparklines(t.Context(), MetricLoad1, t0.Add(29*time.Minute), t0.Add(31*time.Minute), 2)
	if err != nil {
		t.Fatal(err)
	}
	if g := line(got[mac]); g != "1 3" {
		t.Errorf("last two minutes = %s, want 1 3 (the current minute's two points)", g)
	}
}

func keys(m map[string][]*float64) []string {
	var k []string
	for s := range m {
		k = append(k, s)
	}
	return k
}
