package main

import (
	"os"
	"testing"
)

// runMainEnv makes the test binary run main (with its own arguments) instead of the tests,
// so that tests can start it as `pirack serve` without building pirack.
const runMainEnv = "PIRACK_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}
