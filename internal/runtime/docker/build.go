package docker

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker/api/types/build"
)

// ImageBuilder is the part of the Docker client BuildImage needs;
// *client.Client satisfies it.
type ImageBuilder interface {
	ImageBuild(ctx context.Context, buildContext io.Reader, options build.ImageBuildOptions) (build.ImageBuildResponse, error)
}

// BuildError is a failed image build: the Dockerfile step that failed and
// the builder's message.
type BuildError struct {
	Step    string // e.g. "Step 3/5 : RUN make", empty when the build failed before any step
	Message string
}

func (e *BuildError) Error() string {
	if e.Step == "" {
		return "image build failed: " + e.Message
	}
	return "image build failed at " + e.Step + ": " + e.Message
}

// BuildImage builds the Dockerfile at dockerfile (relative to dir; empty
// means "Dockerfile") with dir as the build context, tags the result and
// returns the image ID. The builder's output is written to logs as
// readable lines. Paths matched by dir/.dockerignore stay out of the
// context.
//
// No build arguments are passed: credentials must never reach a build,
// where they would be baked into image layers.
func BuildImage(ctx context.Context, cli ImageBuilder, dir, dockerfile, tag string, noCache bool, logs io.Writer) (string, error) {
	if dockerfile == "" {
		dockerfile = "Dockerfile"
	}
	dockerfile = filepath.ToSlash(filepath.Clean(dockerfile))
	if dockerfile == ".." || strings.HasPrefix(dockerfile, "../") || filepath.IsAbs(dockerfile) {
		return "", fmt.Errorf("build %s: Dockerfile %q is outside the build context", tag, dockerfile)
	}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(dockerfile))); err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	ignore, err := readDockerignore(dir)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}

	// The context streams through a pipe so a large repository is never
	// held in memory.
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeContextTar(pw, dir, ignore, dockerfile))
	}()
	defer pr.Close()

	resp, err := cli.ImageBuild(ctx, pr, build.ImageBuildOptions{
		Tags:        []string{tag},
		Dockerfile:  dockerfile,
		NoCache:     noCache,
		Remove:      true,
		ForceRemove: true,
		// The classic builder needs no session; the images a Service builds
		// FROM must already exist locally or be pullable by the daemon.
		Version: build.BuilderV1,
		Labels:  map[string]string{"slipway.build": "true"},
	})
	if err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	defer resp.Body.Close()
	id, err := readBuildStream(resp.Body, logs)
	if err != nil {
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	return id, nil
}

// buildMessage is one JSON object of the Engine's build stream.
type buildMessage struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	ID          string `json:"id"`
	Progress    string `json:"progress"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Aux json.RawMessage `json:"aux"`
}

// readBuildStream turns the build's JSON messages into log lines and
// returns the built image ID, or a *BuildError naming the failing step.
func readBuildStream(r io.Reader, logs io.Writer) (string, error) {
	dec := json.NewDecoder(r)
	var imageID, step, lastLine string
	for {
		var m buildMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "", fmt.Errorf("read build output: %w", err)
		}
		switch {
		case m.Error != "" || m.ErrorDetail != nil:
			msg := m.Error
			if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
				msg = m.ErrorDetail.Message
			}
			fmt.Fprintf(logs, "ERROR: %s\n", msg)
			return "", &BuildError{Step: step, Message: msg}
		case len(m.Aux) > 0:
			var aux struct{ ID string }
			if json.Unmarshal(m.Aux, &aux) == nil && aux.ID != "" {
				imageID = aux.ID
			}
		case m.Stream != "":
			io.WriteString(logs, m.Stream)
			for _, line := range strings.Split(m.Stream, "\n") {
				line = strings.TrimSpace(line)
				if strings.HasPrefix(line, "Step ") {
					step = line
				}
				if line != "" {
					lastLine = line
				}
			}
		case m.Status != "" && m.Progress == "":
			// Pull progress bars are noise in a deployment log; the status
			// lines around them say what happened.
			if m.ID != "" {
				fmt.Fprintf(logs, "%s: %s\n", m.ID, m.Status)
			} else {
				fmt.Fprintf(logs, "%s\n", m.Status)
			}
		}
	}
	if imageID == "" {
		// Older daemons do not send the aux message; the last line then
		// reads "Successfully built <id>".
		if id, ok := strings.CutPrefix(lastLine, "Successfully built "); ok {
			imageID = id
		}
	}
	if imageID == "" {
		return "", &BuildError{Step: step, Message: "the builder finished without reporting an image"}
	}
	return imageID, nil
}

// writeContextTar writes dir as a tar archive, leaving out what ignore
// excludes. The Dockerfile and .dockerignore are always sent, as the
// Docker CLI does, because the builder needs them.
func writeContextTar(w io.Writer, dir string, ignore *ignorePatterns, dockerfile string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if rel != dockerfile && rel != ".dockerignore" && ignore.excludes(rel) {
			if d.IsDir() && !ignore.mayReinclude(rel) {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		hdr.Name = rel
		if d.IsDir() {
			hdr.Name += "/"
		}
		// Ownership on the build host means nothing inside the image.
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("archive build context: %w", err)
	}
	return tw.Close()
}
