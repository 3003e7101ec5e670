//! Consumers of the pump: packet sinks (see each decoded packet once) and window sinks (see each
//! finished window of one aggregator).
//!
//! Several consumers share one decode: a tuple or a `Vec` of packet sinks is a packet sink that
//! hands each packet to every member in order (a second aggregator with another ω, a history
//! recorder). [`Windower`] turns a window sink into a packet sink by putting an aggregator in
//! front of it.

use crate::decode::PacketSummary;
use crate::timestamp::format_ts;
use crate::window::{
    AggregatorStats, Omega, PartialWindow, Window, WindowAggregator, WindowConfig,
};

/// A sink's reason to stop the pump (an output that cannot be written, a scorer that is gone).
pub type SinkError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Sees every decoded packet, the clock, and the end of the stream.
pub trait PacketSink {
    /// One decoded packet, in capture order.
    fn packet(&mut self, packet: &PacketSummary) -> Result<(), SinkError>;
    /// The time is `now_ns` although no packet says so (a quiet live link, paced replay).
    fn advance_to(&mut self, now_ns: i64) -> Result<(), SinkError>;
    /// The stream ended: emit what is still open.
    fn finish(&mut self) -> Result<(), SinkError>;
    /// The clock that stamps packets was stepped; it now reads `now_ns` (see
    /// [`WindowAggregator::clock_step`]).
    fn clock_step(&mut self, now_ns: i64) -> Result<(), SinkError>;
}

/// Sees the finished windows of one aggregator.
pub trait WindowSink {
    /// One finished window, in time order.
    fn window(&mut self, window: Window) -> Result<(), SinkError>;

    /// Called for each packet after the windows that its timestamp closed, so per-window
    /// tallies kept here (attack labels) never leak into the window before.
    #[inline]
    fn packet(&mut self, _packet: &PacketSummary) {}

    /// The stream ended and the last window was delivered.
    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// An aggregator in front of a window sink: packets in, windows out to `sink`.
pub struct Windower<S> {
    aggregator: WindowAggregator,
    sink: S,
    /// The first error of the sink, reported by the call that delivered the window.
    error: Option<SinkError>,
}

impl<S: WindowSink> Windower<S> {
    /// An aggregator with `config` feeding `sink`.
    pub fn new(config: WindowConfig, sink: S) -> Self {
        Self {
            aggregator: WindowAggregator::new(config),
            sink,
            error: None,
        }
    }

    /// ω of the windows.
    pub fn omega(&self) -> Omega {
        self.aggregator.config().omega
    }

    /// What the aggregator has seen so far.
    pub fn stats(&self) -> AggregatorStats {
        self.aggregator.stats()
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The sink, mutably.
    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.sink
    }

    /// The sink, taken back.
    pub fn into_sink(self) -> S {
        self.sink
    }

    /// Delivers windows to the sink, keeping its first error.
    fn deliver(sink: &mut S, error: &mut Option<SinkError>, w: Window) {
        if error.is_none() {
            if let Err(e) = sink.window(w) {
                *error = Some(e);
            }
        }
    }

    #[inline(always)]
    fn take_error(&mut self) -> Result<(), SinkError> {
        if self.error.is_none() {
            return Ok(());
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl<S: WindowSink> PacketSink for Windower<S> {
    #[inline(always)]
    fn packet(&mut self, packet: &PacketSummary) -> Result<(), SinkError> {
        let Self {
            aggregator,
            sink,
            error,
        } = self;
        aggregator.push(packet, &mut |w| Self::deliver(sink, error, w));
        sink.packet(packet);
        warn_time_jump(aggregator);
        self.take_error()
    }

    fn advance_to(&mut self, now_ns: i64) -> Result<(), SinkError> {
        let Self {
            aggregator,
            sink,
            error,
        } = self;
        aggregator.advance_to(now_ns, &mut |w| Self::deliver(sink, error, w));
        self.take_error()
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        let Self {
            aggregator,
            sink,
            error,
        } = self;
        aggregator.finish(&mut |w| Self::deliver(sink, error, w));
        self.take_error()?;
        self.sink.finish()
    }

    fn clock_step(&mut self, now_ns: i64) -> Result<(), SinkError> {
        let Self {
            aggregator,
            sink,
            error,
        } = self;
        aggregator.clock_step(now_ns, &mut |w| Self::deliver(sink, error, w));
        self.take_error()
    }
}

/// Logs a time jump the aggregator just collapsed, if any.
#[inline(always)]
fn warn_time_jump(aggregator: &mut WindowAggregator) {
    if let Some(jump) = aggregator.take_time_jump() {
        // The pump's span names the file or interface; `packet` is the position in the stream.
        tracing::warn!(
            packet = aggregator.stats().packets,
            omega_s = %aggregator.config().omega,
            from = %format_ts(jump.from_window_start_ns),
            to = %format_ts(jump.to_window_start_ns),
            "packet time jumped by more than {} windows (max_gap_windows): collapsed, no empty windows emitted for it",
            aggregator.config().max_gap_windows
        );
    }
}

/// Sees the finished windows of several aggregators (one per window length), tagged with the
/// index of their scale.
pub trait ScaleSink {
    /// One finished window of scale `scale` (the index in [`MultiWindower`]'s configs); in time
    /// order within a scale.
    fn window(&mut self, scale: usize, window: Window) -> Result<(), SinkError>;

    /// Called for each packet after the windows of every scale that its timestamp closed.
    #[inline]
    fn packet(&mut self, _packet: &PacketSummary) {}

    /// The stream ended and the last window of every scale was delivered.
    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Sees the closed windows of several aggregators unfinished, as partial windows to merge with
/// other parts of the same windows (capture workers, sensors).
pub trait PartialSink {
    /// Window `partial` of scale `scale` closed (in time order within a scale); `top_k` is the
    /// scale's talkers setting. The partial is cleared after the call: take what is needed.
    fn partial(
        &mut self,
        scale: usize,
        top_k: usize,
        partial: &mut PartialWindow,
    ) -> Result<(), SinkError>;

    /// Called for each packet after the windows of every scale that its timestamp closed.
    #[inline]
    fn packet(&mut self, _packet: &PacketSummary) {}

    /// The stream ended and the last window of every scale was delivered.
    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Finishes each closed partial into its window for a [`ScaleSink`].
pub struct Finish<S>(S);

impl<S: ScaleSink> PartialSink for Finish<S> {
    #[inline(always)]
    fn partial(
        &mut self,
        scale: usize,
        top_k: usize,
        partial: &mut PartialWindow,
    ) -> Result<(), SinkError> {
        self.0.window(scale, partial.finish(top_k))
    }

    #[inline]
    fn packet(&mut self, packet: &PacketSummary) {
        self.0.packet(packet);
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.0.finish()
    }
}

/// One aggregator per window length in front of one sink: several ω from one decode. With a
/// [`ScaleSink`] ([`MultiWindower::new`]) it sees finished windows; with a [`PartialSink`]
/// ([`MultiWindower::partials`]) it sees them unfinished.
pub struct MultiWindower<S> {
    aggregators: Vec<WindowAggregator>,
    sink: S,
    /// The first error of the sink, reported by the call that delivered the window.
    error: Option<SinkError>,
}

impl<S: ScaleSink> MultiWindower<Finish<S>> {
    /// One aggregator per config (scale `i` is `configs[i]`) feeding `sink`.
    pub fn new(configs: &[WindowConfig], sink: S) -> Self {
        MultiWindower::partials(configs, Finish(sink))
    }

    /// The sink.
    pub fn sink(&self) -> &S {
        &self.sink.0
    }

    /// The sink, taken back.
    pub fn into_sink(self) -> S {
        self.sink.0
    }
}

impl<S: PartialSink> MultiWindower<S> {
    /// One aggregator per config feeding a partial sink.
    pub fn partials(configs: &[WindowConfig], sink: S) -> Self {
        Self {
            aggregators: configs.iter().map(|c| WindowAggregator::new(*c)).collect(),
            sink,
            error: None,
        }
    }

    /// What each aggregator has seen so far, by scale.
    pub fn stats(&self) -> Vec<AggregatorStats> {
        self.aggregators.iter().map(|a| a.stats()).collect()
    }

    /// The partial sink.
    pub fn partial_sink(&self) -> &S {
        &self.sink
    }

    /// Runs `step` on each aggregator, delivering its closed windows tagged with its scale.
    #[inline(always)]
    fn each(
        &mut self,
        mut step: impl FnMut(&mut WindowAggregator, &mut dyn FnMut(&mut PartialWindow)),
    ) -> Result<(), SinkError> {
        let Self {
            aggregators,
            sink,
            error,
        } = self;
        for (scale, aggregator) in aggregators.iter_mut().enumerate() {
            let top_k = aggregator.config().top_k;
            step(aggregator, &mut |p| {
                if error.is_none() {
                    if let Err(e) = sink.partial(scale, top_k, p) {
                        *error = Some(e);
                    }
                }
            });
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl<S: PartialSink> PacketSink for MultiWindower<S> {
    #[inline]
    fn packet(&mut self, packet: &PacketSummary) -> Result<(), SinkError> {
        self.each(|a, emit| {
            a.push_partials(packet, &mut |p| emit(p));
            warn_time_jump(a);
        })?;
        self.sink.packet(packet);
        Ok(())
    }

    fn advance_to(&mut self, now_ns: i64) -> Result<(), SinkError> {
        self.each(|a, emit| a.advance_partials_to(now_ns, &mut |p| emit(p)))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.each(|a, emit| a.finish_partials(&mut |p| emit(p)))?;
        self.sink.finish()
    }

    fn clock_step(&mut self, now_ns: i64) -> Result<(), SinkError> {
        self.each(|a, emit| a.clock_step_partials(now_ns, &mut |p| emit(p)))
    }
}

/// A scale sink that keeps every window with its scale (tests, small tools).
impl ScaleSink for Vec<(usize, Window)> {
    fn window(&mut self, scale: usize, window: Window) -> Result<(), SinkError> {
        self.push((scale, window));
        Ok(())
    }
}

impl<A: PacketSink, B: PacketSink> PacketSink for (A, B) {
    #[inline]
    fn packet(&mut self, packet: &PacketSummary) -> Result<(), SinkError> {
        self.0.packet(packet)?;
        self.1.packet(packet)
    }

    fn advance_to(&mut self, now_ns: i64) -> Result<(), SinkError> {
        self.0.advance_to(now_ns)?;
        self.1.advance_to(now_ns)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.0.finish()?;
        self.1.finish()
    }

    fn clock_step(&mut self, now_ns: i64) -> Result<(), SinkError> {
        self.0.clock_step(now_ns)?;
        self.1.clock_step(now_ns)
    }
}

impl<S: PacketSink> PacketSink for Vec<S> {
    #[inline]
    fn packet(&mut self, packet: &PacketSummary) -> Result<(), SinkError> {
        self.iter_mut().try_for_each(|s| s.packet(packet))
    }

    fn advance_to(&mut self, now_ns: i64) -> Result<(), SinkError> {
        self.iter_mut().try_for_each(|s| s.advance_to(now_ns))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.iter_mut().try_for_each(|s| s.finish())
    }

    fn clock_step(&mut self, now_ns: i64) -> Result<(), SinkError> {
        self.iter_mut().try_for_each(|s| s.clock_step(now_ns))
    }
}

impl<S: PacketSink + ?Sized> PacketSink for Box<S> {
    #[inline]
    fn packet(&mut self, packet: &PacketSummary) -> Result<(), SinkError> {
        (**self).packet(packet)
    }

    fn advance_to(&mut self, now_ns: i64) -> Result<(), SinkError> {
        (**self).advance_to(now_ns)
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        (**self).finish()
    }

    fn clock_step(&mut self, now_ns: i64) -> Result<(), SinkError> {
        (**self).clock_step(now_ns)
    }
}

/// A window sink that keeps every window (tests, small tools).
impl WindowSink for Vec<Window> {
    fn window(&mut self, window: Window) -> Result<(), SinkError> {
        self.push(window);
        Ok(())
    }
}
