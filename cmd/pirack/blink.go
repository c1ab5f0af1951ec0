package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pirack/pirack/internal/secretfile"
	"github.com/pirack/pirack/topics"
)

func runBlink(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("blink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	brokerURL := fs.String("broker", "tcp://127.0.0.1:1883", "MQTT broker URL")
	username := fs.String("username", "admin", "MQTT user allowed to send LED commands (admin or automation)")
	passwordFile := fs.String("password-file", "", "file holding the password (else $PIRACK_PASSWORD)")
	count := fs.Int("count", topics.DefaultBlinkCount, "number of flashes")
	period := fs.Duration("period", topics.DefaultBlinkPeriodMS*time.Millisecond, "one on+off cycle")
	ttl := fs.Duration("ttl", 2*time.Minute, "drop the command if the Pi is not reached within this time")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pirack blink [flags] MAC\n\nMakes the Pi's LED blink so it can be found in the rack.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errors.New("blink needs exactly one MAC address")
	}
	mac, err := topics.NormalizeMAC(fs.Arg(0))
	if err != nil {
		return err
	}
	password, err := readPassword(*passwordFile)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	cmd := topics.LEDCommand{
		Action: topics.LEDBlink, Count: *count, PeriodMS: int(period.Milliseconds()),
		IssuedAt: now, ExpiresAt: now.Add(*ttl), By: *username,
	}.WithDefaults()
	payload, err := topics.Encode(cmd)
	if err != nil {
		return err
	}
	if err := publishOnce(ctx, *brokerURL, *username, password, topics.LEDTopic(mac), payload); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sent: blink %d x %v to %s (expires %s)\n", cmd.Count, *period, mac, cmd.ExpiresAt.Format(time.RFC3339))
	return nil
}

// publishOnce connects, publishes one QoS 1 message and disconnects. The PUBACK only means the
// broker took it; whether the Pi blinked shows on the dashboard.
func publishOnce(ctx context.Context, brokerURL, username, password, topic string, payload []byte) error {
	const timeout = 10 * time.Second
	suffix := make([]byte, 4)
	rand.Read(suffix)
	opts := mqtt.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID("pirack-cli-" + hex.EncodeToString(suffix)).
		SetUsername(username).SetPassword(password).
		SetProtocolVersion(4).
		SetConnectTimeout(timeout).
		SetAutoReconnect(false)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(timeout) {
		return fmt.Errorf("connect to %s: no answer within %v (is pirack serve running there?)", brokerURL, timeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("connect to %s as %q: %w (check the username and password)", brokerURL, username, err)
	}
	defer c.Disconnect(250)
	pub := c.Publish(topic, 1, false, payload)
	select {
	case <-pub.Done():
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(timeout):
		return fmt.Errorf("publish to %s: no acknowledgement within %v", topic, timeout)
	}
	if err := pub.Error(); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// readPassword reads a password from a file (refused if others can read it) or $PIRACK_PASSWORD.
func readPassword(path string) (string, error) {
	if path == "" {
		if p := os.Getenv("PIRACK_PASSWORD"); p != "" {
			return p, nil
		}
		return "", errors.New("no password: pass --password-file or set PIRACK_PASSWORD")
	}
	return secretfile.ReadPassword(path, "password file")
}
