package main

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/pirack/pirack/enroll"
)

// pirack enroll prints a token that enrols one Pi of its row, once, and the command to run.
func TestEnrollIssuesAToken(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"enroll", "--data-dir", dir, "--row", "r3", "--url", "http://rack-control:8080"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`sudo pirack-agent enroll http://rack-control:8080 ([0-9A-Z]{4}(?:-[0-9A-Z]{4}){3})\n`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no enrol command in:\n%s", out.String())
	}
	store := enroll.Open(dir)
	if row, err := store.Redeem(strings.ToLower(m[1]), "b827eb000301"); err != nil || row != "r3" {
		t.Fatalf("redeem the printed token (typed in lower case): %q %v", row, err)
	}
	if _, err := store.Redeem(m[1], "b827eb000302"); err == nil {
		t.Fatal("a token worked twice")
	}
	for _, args := range [][]string{{"enroll", "--data-dir", dir}, {"enroll", "--data-dir", dir, "--row", "Bad Row"}, {"enroll", "--data-dir", dir + "/missing", "--row", "r1"}} {
		if err := run(t.Context(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
