// Command hello is the WebAssembly module of examples/hello.yaml and
// examples/gang.yaml: it prints a greeting (the GREETING environment
// variable, "Hello" when unset), then its arguments, and exits 0.
//
// Build it for the wasm executor (WASI preview 1):
//
//	GOOS=wasip1 GOARCH=wasm go build -o examples/hello.wasm ./examples/hello
package main

import (
	"fmt"
	"os"
	"strings"
)

//go:generate env GOOS=wasip1 GOARCH=wasm go build -o ../hello.wasm .

func main() {
	greeting := os.Getenv("GREETING")
	if greeting == "" {
		greeting = "Hello"
	}
	fmt.Printf("%s from dms!\n", greeting)
	fmt.Printf("args: %s\n", strings.Join(os.Args[1:], " "))
}
