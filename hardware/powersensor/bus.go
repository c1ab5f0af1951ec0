package powersensor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"periph.io/x/host/v3/sysfs"
)

// Open opens the I2C bus spec names, /dev/i2c-<Bus>, and the sensor on it. It is the only
// function of the package touching real hardware, and this the only file importing periph's
// host drivers.
//
// It opens the bus through periph's sysfs driver directly rather than host.Init and i2creg:
// host.Init would probe every SoC driver periph has (mapping the GPIO registers, opening every
// gpiochip) in the agent, which already drives GPIO through its own backend.
func Open(spec Spec) (*Sensor, error) {
	if spec.Chip == "" {
		return nil, fmt.Errorf("power sensor: no chip given; want %s", form)
	}
	if _, err := spec.withDefaults(); err != nil {
		return nil, fmt.Errorf("power sensor %s: %w", spec.Chip, err)
	}
	path := fmt.Sprintf("/dev/i2c-%d", spec.Bus)
	// periph's own errors flatten the cause and blame the plugdev group; open the device
	// once first to say what is really wrong.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, busOpenError(path, spec.Bus, err)
	}
	f.Close()
	bus, err := sysfs.NewI2C(spec.Bus)
	if err != nil {
		return nil, fmt.Errorf("open I2C bus %s: %w", path, err)
	}
	s, err := New(bus, spec)
	if err != nil {
		bus.Close()
		return nil, err
	}
	s.closer = bus
	return s, nil
}

// busOpenError explains a failure to open an I2C bus device.
func busOpenError(path string, n int, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("open I2C bus %d: no %s: I2C is not enabled. Enable it with `sudo raspi-config nonint do_i2c 0` (or dtparam=i2c_arm=on in config.txt) and reboot; see docs/hardware.md", n, path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("open I2C bus %d: %w: the agent's user needs the i2c group (sudo usermod -aG i2c pirack), and under systemd the unit needs SupplementaryGroups=i2c and DeviceAllow=char-i2c rw (deploy/pirack-agent.service has both)", n, err)
	default:
		return fmt.Errorf("open I2C bus %d: %w", n, err)
	}
}
