//! Waiting for an open-loop request's intended start with the kernel's precision. Tokio's
//! timers tick in milliseconds and round up, so a request due at `t` would leave up to a
//! millisecond late and the open loop would count that in its latency; spinning to the
//! deadline costs a core. A timerfd per connection, waited on through tokio's reactor, wakes
//! within microseconds and costs two system calls per wait. Elsewhere than Linux (or if the
//! kernel refuses a timerfd), tokio's timer is used.

use std::time::Instant;

pub(super) struct Timer {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<rustix::fd::OwnedFd>>,
}

impl Timer {
    pub fn new() -> Self {
        Self {
            #[cfg(target_os = "linux")]
            fd: linux::create().ok(),
        }
    }

    /// Returns at `at` (at once if it has passed).
    pub async fn sleep_until(&mut self, at: Instant) {
        let delay = at.saturating_duration_since(Instant::now());
        if delay.is_zero() {
            return;
        }
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd
            && linux::sleep(fd, delay).await.is_ok()
        {
            return;
        }
        tokio::time::sleep_until(at.into()).await;
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::time::Duration;

    use rustix::fd::OwnedFd;
    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
        timerfd_settime,
    };
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    pub fn create() -> io::Result<AsyncFd<OwnedFd>> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // Deprecated because an arbitrary `AsRawFd` may hand out a different or closed
        // descriptor later; an `OwnedFd` cannot, and the replacement is `unsafe`, which this
        // crate forbids.
        #[allow(deprecated)]
        AsyncFd::with_interest(fd, Interest::READABLE)
    }

    /// Arms the timer for `delay` from now and waits until it expires. Arming again resets
    /// the expiration count, so an earlier wait that was abandoned leaves nothing behind.
    pub async fn sleep(fd: &AsyncFd<OwnedFd>, delay: Duration) -> io::Result<()> {
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let value = Timespec {
            tv_sec: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: delay.subsec_nanos().into(),
        };
        timerfd_settime(
            fd.get_ref(),
            TimerfdTimerFlags::empty(),
            &Itimerspec {
                it_interval: zero,
                it_value: value,
            },
        )?;
        loop {
            let mut ready = fd.readable().await?;
            let mut expirations = [0u8; 8];
            match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut expirations)?)) {
                Ok(result) => return result.map(drop),
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn never_wakes_early() {
        let mut timer = Timer::new();
        for i in 0..50 {
            let at = Instant::now() + Duration::from_micros(300 + 37 * i);
            timer.sleep_until(at).await;
            assert!(Instant::now() >= at, "woke early");
        }
        // An abandoned wait leaves nothing behind: the next one still waits its time.
        let at = Instant::now() + Duration::from_millis(50);
        tokio::select! {
            () = timer.sleep_until(at) => panic!("woke early"),
            () = tokio::time::sleep(Duration::from_millis(1)) => {}
        }
        tokio::time::sleep(Duration::from_millis(60)).await; // the abandoned timer expires
        let started = Instant::now();
        timer.sleep_until(started + Duration::from_millis(5)).await;
        assert!(started.elapsed() >= Duration::from_millis(5));
    }
}
