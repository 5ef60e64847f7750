// Package images gives the image runtimes (docker, swarm) what the deploy
// pipeline asks of them besides running releases: building a release's
// image from its checked out source, and telling whether the image of a
// commit already exists so a redeploy of that commit skips the build.
//
// Builder is meant to be embedded next to a runtime, so the runtime keeps
// its own optional abilities (logs, status) and gains these two:
//
//	type dockerRuntime struct {
//		*docker.Runtime
//		images.Builder
//	}
package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"

	"github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"slipway.dev/slipway/internal/runtime/docker"
)

// Client is the part of the Docker client a Builder needs;
// *client.Client satisfies it.
type Client interface {
	docker.ImageBuilder
	client.ImageAPIClient
}

// Builder builds and finds release images on one Docker Engine.
type Builder struct {
	Client Client
}

// BuildImage builds dir's Dockerfile (empty means "Dockerfile") and tags
// the result; see docker.BuildImage.
func (b Builder) BuildImage(ctx context.Context, dir, dockerfile, tag string, noCache bool, logs io.Writer) (string, error) {
	return docker.BuildImage(ctx, b.Client, dir, dockerfile, tag, noCache, logs)
}

// ImageID returns the ID of the local image ref, or "" when there is none.
func (b Builder) ImageID(ctx context.Context, ref string) (string, error) {
	img, err := b.Client.ImageInspect(ctx, ref)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return "", nil
		}
		return "", fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return img.ID, nil
}

// RemoveImages removes every tag of the image repository repo (a deleted
// Service's "slipway/<service>"), with the layers nothing else uses.
func (b Builder) RemoveImages(ctx context.Context, repo string) error {
	list, err := b.Client.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", repo+":*"))})
	if err != nil {
		return fmt.Errorf("list images of %s: %w", repo, err)
	}
	var errs []error
	for _, img := range list {
		for _, tag := range img.RepoTags {
			if _, err := b.Client.ImageRemove(ctx, tag, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove image %s: %w", tag, err))
			}
		}
	}
	return errors.Join(errs...)
}

// PruneImages removes the tags of repo beyond the ones in use and the keep
// newest others (by creation time), with the layers nothing else uses, and
// returns how many it removed.
func (b Builder) PruneImages(ctx context.Context, repo string, inUse []string, keep int) (int, error) {
	list, err := b.Client.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", repo+":*"))})
	if err != nil {
		return 0, fmt.Errorf("list images of %s: %w", repo, err)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Created > list[j].Created })
	removed, kept := 0, 0
	var errs []error
	for _, img := range list {
		used := false
		for _, tag := range img.RepoTags {
			used = used || slices.Contains(inUse, tag)
		}
		if used {
			continue
		}
		if kept < keep {
			kept++
			continue
		}
		for _, tag := range img.RepoTags {
			if _, err := b.Client.ImageRemove(ctx, tag, image.RemoveOptions{PruneChildren: true}); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("remove image %s: %w", tag, err))
				continue
			}
			removed++
		}
	}
	return removed, errors.Join(errs...)
}
