// Package e2e holds pirack's end-to-end tests: the real embedded broker on a loopback TCP port,
// real agents (paho clients with simulated GPIO) and the real dashboard, wired as
// `pirack serve` wires them. It has no non-test code.
package e2e
