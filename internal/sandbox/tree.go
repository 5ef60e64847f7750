package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"slipway.dev/slipway/internal/runtime"
)

// Everything root does in a Service's workspace goes through this file.
// The workspace is writable by the Service's user, which is also the user
// of the live app, so any path inside it may be swapped for a symlink at
// any moment. The rules:
//
//   - Git fetches and checks out into a staging directory under the
//     workspace root that only root can enter (Stage), never into the
//     workspace itself.
//   - Trees move between directories with renameat2 on directory file
//     descriptors opened with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS),
//     so no component can be a planted symlink, and RENAME_NOREPLACE.
//   - Ownership and modes change through file descriptors of entries opened
//     with O_NOFOLLOW, never through a path; a symlink met on the way is
//     only lchowned.
//   - A finished build is moved out of the workspace before root touches it
//     (Seal), made root-owned and read-only to the Service's group, and
//     lives under releases/, which the Service can read but not change.
//   - Removal moves the tree into staging first and deletes it there.

const (
	stagingDir  = ".staging"  // root only: fetches, trees being sealed, trash
	releasesDir = ".releases" // root:service-group 0750 per Service: sealed builds
	scratchDir  = ".scratch"  // root only: per-Service /tmp and /dev/shm sources
)

// ErrReplaced is returned (wrapped) when a tree Slipway handed over was
// swapped for something else (a symlink, a file, another owner's file).
var ErrReplaced = errors.New("sandbox: build directory was tampered with")

// Scratch is a Service's private /tmp and /dev/shm.
type Scratch struct{ Tmp, Shm string }

// openBeneath opens the directory rel below the directory fd dirfd,
// refusing a symlink in any component and any escape.
func openBeneath(dirfd int, rel string) (int, error) {
	fd, err := unix.Openat2(dirfd, rel, &unix.OpenHow{
		Flags:   unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_RDONLY | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return -1, fmt.Errorf("open %s without following links: %w", rel, err)
	}
	return fd, nil
}

// openRootDir opens one of the root-owned directories Slipway created
// itself (the workspace root and its dot-directories).
func openRootDir(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	return fd, nil
}

// mkdirOwned creates root/rel (one level) owned by root (by Slipway's own
// user when not root) with mode, or fixes the mode of an existing one.
func mkdirOwned(root, rel string, mode os.FileMode) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer r.Close()
	if err := r.Mkdir(rel, mode.Perm()); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("sandbox: create %s: %w", rel, err)
	}
	if os.Geteuid() == 0 {
		if err := r.Lchown(rel, 0, 0); err != nil {
			return fmt.Errorf("sandbox: own %s: %w", rel, err)
		}
	}
	if err := r.Chmod(rel, mode); err != nil {
		return fmt.Errorf("sandbox: mode of %s: %w", rel, err)
	}
	return nil
}

func randomName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Stage returns a fresh empty directory only root can enter, for a fetch.
func (m *Manager) Stage() (string, error) {
	if err := mkdirOwned(m.root, stagingDir, 0o700); err != nil {
		return "", err
	}
	dir := filepath.Join(m.root, stagingDir, randomName("s-"))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("sandbox: stage: %w", err)
	}
	return dir, nil
}

// Place hands the staged tree stageDir/src over to the Service's user and
// moves it into the workspace as builds/<name>, returning its path. The
// staging directory is removed.
func (m *Manager) Place(ctx context.Context, serviceID, stageDir, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	ws, u, err := m.Workspace(ctx, serviceID)
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stageDir)
	stage, err := openRootDir(stageDir)
	if err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	defer unix.Close(stage)
	if m.isolating && !u.IsZero() {
		src, err := openBeneath(stage, "src")
		if err != nil {
			return "", fmt.Errorf("sandbox: %w", err)
		}
		err = walkTree(src, func(fd int, st *unix.Stat_t) error {
			return unix.Fchown(fd, int(u.UID), int(u.GID))
		}, func(dirfd int, name string) error {
			return unix.Fchownat(dirfd, name, int(u.UID), int(u.GID), unix.AT_SYMLINK_NOFOLLOW)
		})
		unix.Close(src)
		if err != nil {
			return "", fmt.Errorf("sandbox: hand the checkout over: %w", err)
		}
	}
	wsfd, err := openRootDir(ws)
	if err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	defer unix.Close(wsfd)
	if err := unix.Mkdirat(wsfd, "builds", 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return "", fmt.Errorf("sandbox: create builds: %w", err)
	}
	builds, err := openBeneath(wsfd, "builds")
	if err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	defer unix.Close(builds)
	if m.isolating && !u.IsZero() {
		if err := unix.Fchown(builds, int(u.UID), int(u.GID)); err != nil {
			return "", fmt.Errorf("sandbox: own builds: %w", err)
		}
	}
	if err := unix.Renameat2(stage, "src", builds, name, unix.RENAME_NOREPLACE); err != nil {
		return "", fmt.Errorf("sandbox: move the checkout into the workspace: %w", err)
	}
	return filepath.Join(ws, "builds", name), nil
}

// Seal moves the finished build builds/<name> out of the Service's reach,
// makes it owned by root and the Service's group, read-only (directories
// 0750, files 0640 or 0750 when executable, no set-id bits), and places it
// under releases/, returning its path. The caller has killed every process
// of the build first. A tree that was swapped or holds another owner's
// file (a hard link planted by the build) is refused and removed.
func (m *Manager) Seal(ctx context.Context, serviceID, name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	ws, u, err := m.Workspace(ctx, serviceID)
	if err != nil {
		return "", err
	}
	trash, err := m.Stage()
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(trash)
	stage, err := openRootDir(trash)
	if err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	defer unix.Close(stage)
	if err := m.moveOut(ws, name, stage, "tree"); err != nil {
		return "", err
	}
	var st unix.Stat_t
	if err := unix.Fstatat(stage, "tree", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return "", fmt.Errorf("%w: builds/%s is no longer a directory", ErrReplaced, name)
	}
	tree, err := openBeneath(stage, "tree")
	if err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	gid := int(u.GID)
	owner := int(u.UID)
	if !m.isolating || u.IsZero() {
		owner, gid = os.Geteuid(), os.Getegid()
	}
	err = walkTree(tree, func(fd int, st *unix.Stat_t) error {
		if int(st.Uid) != owner {
			return fmt.Errorf("%w: a file of uid %d is in the build", ErrReplaced, st.Uid)
		}
		mode := uint32(0o640)
		if st.Mode&unix.S_IFMT == unix.S_IFDIR || st.Mode&0o100 != 0 {
			mode = 0o750
		}
		if err := unix.Fchown(fd, os.Geteuid(), gid); err != nil {
			return err
		}
		return unix.Fchmod(fd, mode)
	}, func(dirfd int, name string) error {
		return unix.Fchownat(dirfd, name, os.Geteuid(), gid, unix.AT_SYMLINK_NOFOLLOW)
	})
	unix.Close(tree)
	if err != nil {
		return "", fmt.Errorf("sandbox: seal build %s: %w", name, err)
	}
	rel, err := m.releasesFor(u, serviceID)
	if err != nil {
		return "", err
	}
	relfd, err := openRootDir(rel)
	if err != nil {
		return "", fmt.Errorf("sandbox: %w", err)
	}
	defer unix.Close(relfd)
	if err := unix.Renameat2(stage, "tree", relfd, name, unix.RENAME_NOREPLACE); err != nil {
		return "", fmt.Errorf("sandbox: place sealed build: %w", err)
	}
	return filepath.Join(rel, name), nil
}

// Discard removes builds/<name> from the workspace (a failed build).
func (m *Manager) Discard(ctx context.Context, serviceID, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	ws, _, err := m.Workspace(ctx, serviceID)
	if err != nil {
		return err
	}
	trash, err := m.Stage()
	if err != nil {
		return err
	}
	defer os.RemoveAll(trash)
	stage, err := openRootDir(trash)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer unix.Close(stage)
	if err := m.moveOut(ws, name, stage, "tree"); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// moveOut renames ws/builds/<name> to stage/<to>. rename(2) moves a
// planted symlink itself, never what it points at.
func (m *Manager) moveOut(ws, name string, stage int, to string) error {
	wsfd, err := openRootDir(ws)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer unix.Close(wsfd)
	builds, err := openBeneath(wsfd, "builds")
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer unix.Close(builds)
	if err := unix.Renameat2(builds, name, stage, to, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("sandbox: move builds/%s out of the workspace: %w", name, err)
	}
	return nil
}

// releasesFor returns (creating) the Service's sealed-build directory,
// root:<service group> 0750.
func (m *Manager) releasesFor(u runtime.User, serviceID string) (string, error) {
	if err := mkdirOwned(m.root, releasesDir, 0o711); err != nil {
		return "", err
	}
	rel := filepath.Join(releasesDir, UserName(serviceID))
	if err := mkdirOwned(m.root, rel, 0o750); err != nil {
		return "", err
	}
	if m.isolating && !u.IsZero() {
		if err := os.Lchown(filepath.Join(m.root, rel), 0, int(u.GID)); err != nil {
			return "", fmt.Errorf("sandbox: %w", err)
		}
	}
	return filepath.Join(m.root, rel), nil
}

// Scratch returns (creating) the Service's private /tmp and /dev/shm
// sources: under a root-only directory, owned by the Service's user.
func (m *Manager) Scratch(ctx context.Context, serviceID string) (Scratch, error) {
	u, err := m.User(ctx, serviceID)
	if err != nil {
		return Scratch{}, err
	}
	if !m.isolating || u.IsZero() {
		return Scratch{}, nil
	}
	base := filepath.Join(scratchDir, UserName(serviceID))
	if err := mkdirOwned(m.root, scratchDir, 0o700); err != nil {
		return Scratch{}, err
	}
	if err := mkdirOwned(m.root, base, 0o700); err != nil {
		return Scratch{}, err
	}
	for _, d := range []string{"tmp", "shm"} {
		rel := filepath.Join(base, d)
		if err := mkdirOwned(m.root, rel, 0o777|os.ModeSticky); err != nil {
			return Scratch{}, err
		}
		if err := os.Lchown(filepath.Join(m.root, rel), int(u.UID), int(u.GID)); err != nil {
			return Scratch{}, fmt.Errorf("sandbox: %w", err)
		}
	}
	return Scratch{Tmp: filepath.Join(m.root, base, "tmp"), Shm: filepath.Join(m.root, base, "shm")}, nil
}

// RemoveService deletes everything the sandbox holds for a Service: its
// workspace, sealed builds, scratch directories and system user. The
// caller has stopped every process of the Service first.
func (m *Manager) RemoveService(ctx context.Context, serviceID string) error {
	name := UserName(serviceID)
	trash, err := m.Stage()
	if err != nil {
		return err
	}
	defer os.RemoveAll(trash)
	stage, err := openRootDir(trash)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer unix.Close(stage)
	var errs []error
	for i, dir := range []string{m.root, filepath.Join(m.root, releasesDir), filepath.Join(m.root, scratchDir)} {
		fd, err := openRootDir(dir)
		if err != nil {
			if !errors.Is(err, unix.ENOENT) {
				errs = append(errs, err)
			}
			continue
		}
		// Each parent is root-owned, so the Service cannot swap its
		// directory; once in staging it is removed with fd-relative calls.
		if err := unix.Renameat2(fd, name, stage, fmt.Sprint(i), unix.RENAME_NOREPLACE); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("sandbox: move %s/%s out: %w", dir, name, err))
		}
		unix.Close(fd)
	}
	if err := os.RemoveAll(trash); err != nil {
		errs = append(errs, fmt.Errorf("sandbox: remove %s: %w", name, err))
	}
	if m.isolating {
		m.mu.Lock()
		delete(m.users, name)
		m.mu.Unlock()
		if u, err := lookup(name); err == nil {
			m.fw.uncover(ctx, u.UID)
			if out, err := exec.CommandContext(ctx, "userdel", name).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("sandbox: delete user %s: %w: %s", name, err, strings.TrimSpace(string(out))))
			}
		}
	}
	return errors.Join(errs...)
}

func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("sandbox: invalid build name %q", name)
	}
	return nil
}

// walkTree applies onFD to the directory dirfd and, depth first, to every
// directory and regular file below it, each opened with O_NOFOLLOW (a
// directory before its entries are read, so a directory already changed
// cannot gain entries unseen); symlinks get onLink(parent fd, name).
// Sockets and FIFOs are removed: nothing a build needs, and they cannot
// be opened safely. Nothing is followed, so nothing outside is touched.
func walkTree(dirfd int, onFD func(fd int, st *unix.Stat_t) error, onLink func(dirfd int, name string) error) error {
	var st unix.Stat_t
	if err := unix.Fstat(dirfd, &st); err != nil {
		return err
	}
	if err := onFD(dirfd, &st); err != nil {
		return err
	}
	// Read entries through a duplicate, so closing it leaves dirfd open.
	dup, err := unix.Dup(dirfd)
	if err != nil {
		return err
	}
	unix.CloseOnExec(dup)
	df := os.NewFile(uintptr(dup), "dir")
	names, err := df.Readdirnames(-1)
	df.Close()
	if err != nil {
		return err
	}
	for _, name := range names {
		var est unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &est, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return err
		}
		switch est.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			if err := onLink(dirfd, name); err != nil && !errors.Is(err, unix.ENOENT) {
				return err
			}
		case unix.S_IFDIR:
			sub, err := openBeneath(dirfd, name)
			if err != nil {
				return err
			}
			err = walkTree(sub, onFD, onLink)
			unix.Close(sub)
			if err != nil {
				return err
			}
		case unix.S_IFREG:
			fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
			if err != nil {
				return err
			}
			var fst unix.Stat_t
			err = unix.Fstat(fd, &fst)
			if err == nil && fst.Mode&unix.S_IFMT != unix.S_IFREG {
				err = fmt.Errorf("%w: %s changed type", ErrReplaced, name)
			}
			if err == nil {
				err = onFD(fd, &fst)
			}
			unix.Close(fd)
			if err != nil {
				return err
			}
		default:
			if err := unix.Unlinkat(dirfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
				return err
			}
		}
	}
	return nil
}

// SealedBuild is one finished build of a Service, out of its reach.
type SealedBuild struct {
	Name    string
	Path    string
	ModTime time.Time
}

// SealedBuilds lists a Service's sealed builds, newest first.
func (m *Manager) SealedBuilds(serviceID string) ([]SealedBuild, error) {
	dir := filepath.Join(m.root, releasesDir, UserName(serviceID))
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: list sealed builds: %w", err)
	}
	var out []SealedBuild
	for _, e := range entries {
		if !e.IsDir() || checkName(e.Name()) != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, SealedBuild{Name: e.Name(), Path: filepath.Join(dir, e.Name()), ModTime: info.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ModTime.After(out[j].ModTime) })
	return out, nil
}

// RemoveSealed deletes one sealed build. The tree is root-owned and the
// directory holding it is not writable by the Service, so nothing in it
// can have been swapped; it is still moved into a root-only staging
// directory first, like every removal of a Service's files.
func (m *Manager) RemoveSealed(serviceID, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	trash, err := m.Stage()
	if err != nil {
		return err
	}
	defer os.RemoveAll(trash)
	relfd, err := openRootDir(filepath.Join(m.root, releasesDir, UserName(serviceID)))
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer unix.Close(relfd)
	stage, err := openRootDir(trash)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	defer unix.Close(stage)
	if err := unix.Renameat2(relfd, name, stage, "tree", unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("sandbox: remove sealed build %s: %w", name, err)
	}
	return nil
}
