//go:build !unix

package bench

import "time"

func processCPU() time.Duration { return 0 }

func freeDisk(string) int64 { return -1 }
