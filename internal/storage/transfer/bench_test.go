package transfer

import (
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkDownload copies one 64 MiB file through Dir with Download; the
// anchor, in the same run, is a plain copy of the file with its SHA-256.
func BenchmarkDownload(b *testing.B) {
	src := b.TempDir()
	const size = 64 << 20
	if err := os.WriteFile(filepath.Join(src, "f"), pattern(size, 5), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Run("anchor copy+sha256", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			in, _ := os.Open(filepath.Join(src, "f"))
			out, _ := os.Create(filepath.Join(b.TempDir(), "f"))
			if _, err := io.Copy(io.MultiWriter(out, sha256.New()), in); err != nil {
				b.Fatal(err)
			}
			in.Close()
			out.Close()
		}
	})
	b.Run("anchor copy+sha256+fsync", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			in, _ := os.Open(filepath.Join(src, "f"))
			out, _ := os.Create(filepath.Join(b.TempDir(), "f"))
			if _, err := io.Copy(io.MultiWriter(out, sha256.New()), in); err != nil {
				b.Fatal(err)
			}
			if err := out.Sync(); err != nil {
				b.Fatal(err)
			}
			in.Close()
			out.Close()
		}
	})
	b.Run("BuildManifest", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := BuildManifest(src); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Download", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := Download(context.Background(), Dir(src), b.TempDir(), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
