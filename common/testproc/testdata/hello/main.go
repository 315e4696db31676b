// Command hello is what testproc's test builds.
package main

import "fmt"

func main() { fmt.Println("hello") }
