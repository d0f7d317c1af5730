package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/torsion-server/torsion/internal/handover"
)

// Reloader is a service that can take up new code or configuration
// while it serves, as Run does on SIGHUP.
type Reloader interface {
	Reload(ctx context.Context) error
}

// RunOptions configures Run.
type RunOptions struct {
	// Reopen, if set, is called on SIGUSR1 to reopen the log file (for
	// logrotate without copytruncate).
	Reopen func() error
	// Log receives the shutdown lines; nil means no log.
	Log *slog.Logger
	// ShutdownTimeout bounds the graceful stop; 0 means 30 seconds.
	ShutdownTimeout time.Duration
	// Signals that begin a graceful stop; nil means SIGINT and SIGTERM.
	// A second signal during the stop cuts it short.
	Signals []os.Signal
	// UpgradeTimeout bounds how long the successor started by SIGUSR2 may
	// take to serve; 0 means two minutes.
	UpgradeTimeout time.Duration
	// Started, if set, is called once the service has started (its ports
	// bound), before it is reported ready: to drop privileges, say. An
	// error stops the service and is returned.
	Started func() error
}

// Run starts s, waits for a signal, for ctx to end or for s to fail on its
// own, and then stops s gracefully within the shutdown timeout. It returns
// nil after a clean stop, or the error that made it stop or that stopping
// returned.
//
// While s runs, SIGHUP reloads it if it is a Reloader (one reload at a
// time; a SIGHUP during one is logged and ignored), SIGUSR1 calls
// opts.Reopen, and SIGUSR2 upgrades the binary in place: a successor
// started from the executable's path takes over the listening sockets,
// and once it serves this process drains and returns (one upgrade at a
// time; a SIGUSR2 during one is logged and refused; a successor that fails
// is stopped and this process serves on). SIGTTIN and SIGTTOU, with which
// a terminal would stop a background process, are ignored.
// Under systemd ($NOTIFY_SOCKET), Run notifies READY=1, RELOADING=1,
// STOPPING=1 and, with WatchdogSec=, WATCHDOG=1.
func Run(ctx context.Context, s Service, opts RunOptions) error {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := opts.ShutdownTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	sigs := opts.Signals
	if sigs == nil {
		sigs = []os.Signal{syscall.SIGINT, syscall.SIGTERM}
	}
	notify := newNotifier()
	sigc := make(chan os.Signal, 2)
	signal.Notify(sigc, sigs...)
	defer signal.Stop(sigc)
	signal.Ignore(syscall.SIGTTIN, syscall.SIGTTOU)
	other := make(chan os.Signal, 4)
	signal.Notify(other, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(other)

	// A signal during start-up (an application whose import takes its
	// time, say) calls the start-up off: s stops what it started.
	startCtx, cancelStart := context.WithCancel(ctx)
	defer cancelStart()
	started := make(chan error, 1)
	go func() { started <- s.Start(startCtx) }()
	select {
	case err := <-started:
		if err != nil {
			return err
		}
	case sig := <-sigc:
		log.Info("Received a signal during start-up, stopping.", "signal", signalName(sig))
		cancelStart()
		select {
		case err := <-started:
			if err == nil { // it finished starting all the same
				stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
				defer cancel()
				return s.Stop(stopCtx)
			}
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		case sig := <-sigc:
			return fmt.Errorf("received %s again during start-up: stopping at once", signalName(sig))
		}
	}
	if opts.Started != nil {
		if err := opts.Started(); err != nil {
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
			defer cancel()
			return errors.Join(err, s.Stop(stopCtx))
		}
	}
	var failed <-chan error
	if f, ok := s.(Failer); ok {
		failed = f.Failed()
	}
	if err := notify.send("READY=1\nMAINPID=" + strconv.Itoa(os.Getpid())); err != nil {
		log.Warn("Telling systemd the service is ready failed.", "err", err)
	}
	if Successor() {
		if err := tellPredecessor(); err != nil {
			log.Warn("Telling the previous process that this one serves failed.", "err", err)
		} else {
			log.Info("Took over from the previous process.", "pid", os.Getpid())
		}
	}
	upgradeTimeout := opts.UpgradeTimeout
	if upgradeTimeout <= 0 {
		upgradeTimeout = 2 * time.Minute
	}
	var upgraded chan successor // non-nil while an upgrade runs
	// Upgrades end with the stop: a successor not yet ready is killed.
	upgradeCtx, cancelUpgrade := context.WithCancel(ctx)
	defer cancelUpgrade()
	handedOver := false
	var watchdog <-chan time.Time
	if notify.watchdog > 0 {
		t := time.NewTicker(notify.watchdog / 2)
		defer t.Stop()
		watchdog = t.C
	}
	var cause error
	var reloading sync.Mutex
	reloads := sync.WaitGroup{}
	reloadCtx, cancelReloads := context.WithCancel(ctx)
wait:
	for {
		select {
		case sig := <-sigc:
			log.Info(fmt.Sprintf("Received %s, shutting down.", signalName(sig)))
			break wait
		case <-ctx.Done():
			log.Info("Context ended, shutting down.")
			break wait
		case cause = <-failed:
			log.Error("Service failed, shutting down.", "err", cause)
			break wait
		case <-watchdog:
			notify.send("WATCHDOG=1")
		case sig := <-other:
			switch sig {
			case syscall.SIGHUP:
				r, ok := s.(Reloader)
				if !ok {
					log.Info("Received SIGHUP; nothing here reloads.")
					continue
				}
				if !reloading.TryLock() {
					log.Warn("Received SIGHUP during a reload; ignoring it.")
					continue
				}
				log.Info("Received SIGHUP, reloading.")
				notify.send(reloadingState())
				reloads.Go(func() {
					defer reloading.Unlock()
					defer notify.send("READY=1")
					if err := r.Reload(reloadCtx); err != nil {
						log.Error("The reload failed; what ran before goes on.", "err", err)
						return
					}
					log.Info("Reload complete.")
				})
			case syscall.SIGUSR1:
				if opts.Reopen == nil {
					continue
				}
				if err := opts.Reopen(); err != nil {
					log.Error("Received SIGUSR1; reopening the log failed.", "err", err)
				} else {
					log.Info("Received SIGUSR1; log reopened.")
				}
			default:
				if upgraded != nil {
					log.Warn("Received SIGUSR2 during an upgrade; refusing it.")
					continue
				}
				log.Info("Received SIGUSR2, upgrading: starting the new process.")
				upgraded = make(chan successor, 1)
				go func(c chan<- successor) { c <- upgrade(upgradeCtx, notify, upgradeTimeout) }(upgraded)
			}
		case su := <-upgraded:
			upgraded = nil
			if su.err != nil {
				log.Error("The upgrade failed; this process serves on.", "err", su.err)
				notify.send("READY=1\nMAINPID=" + strconv.Itoa(os.Getpid()))
				continue
			}
			log.Info("Upgrade complete: the new process serves; this one stops accepting and drains.", "pid", su.pid)
			handover.HandedOver()
			handedOver = true
			break wait
		}
	}
	if upgraded != nil {
		// Stopping during an upgrade: the successor is stopped too, or
		// it would outlive the stop it was not asked for.
		cancelUpgrade()
		if su := <-upgraded; su.err == nil {
			syscall.Kill(su.pid, syscall.SIGTERM) // it got ready as the stop began
		}
	}
	if !handedOver { // the successor is the service now
		notify.send("STOPPING=1")
	}
	cancelReloads()
	reloads.Wait()

	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	go func() {
		select {
		case sig := <-sigc:
			log.Warn(fmt.Sprintf("Received %s again, stopping at once.", signalName(sig)))
			cancel()
		case <-stopCtx.Done():
		}
	}()
	err := s.Stop(stopCtx)
	log.Info("Server Shut Down.")
	return errors.Join(cause, err)
}

func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return s.String()
}
