package auth_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"golang.org/x/crypto/bcrypt"

	"github.com/pirack/pirack/auth"
)

// Adding an agent binds it to its Pi: its user name is the MAC, normalised as in topics.
func ExampleUsers_Add() {
	dir, _ := os.MkdirTemp("", "pirack")
	defer os.RemoveAll(dir)

	users, err := auth.Open(filepath.Join(dir, "users.json"))
	if err != nil {
		log.Fatal(err)
	}
	users.Cost = bcrypt.MinCost // fast for the example; leave zero in production

	password := auth.GeneratePassword()
	err = users.Add(auth.User{Role: auth.RoleAgent, MAC: "B8:27:EB:3F:1A:2C", Row: "r1"}, password)
	if err != nil {
		log.Fatal(err)
	}

	u, err := users.Authenticate("b827eb3f1a2c", password)
	fmt.Println(u.Name, u.Role, u.Row, err)

	_, err = users.Authenticate("b827eb3f1a2c", "guess")
	fmt.Println(errors.Is(err, auth.ErrBadCredentials))
	// Output:
	// b827eb3f1a2c agent r1 <nil>
	// true
}
