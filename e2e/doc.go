// Package e2e holds pirack's end-to-end tests: a control center built by package
// controlcenter exactly as `pirack serve` builds it (TestRigsUseTheAssembly keeps it so), on
// its embedded broker or on Debian's Mosquitto, with real agents (paho clients with simulated
// GPIO) over loopback TCP. It has no non-test code.
package e2e
