"""Voice input: a recording or uploaded audio file turned into text, on the CPU.

Offline the recognizer is pocketsphinx, whose English model ships inside its PyPI package. A hosted Space can set
IRIS_SPACE_ASR=whisper for faster-whisper (IRIS_SPACE_WHISPER_MODEL, downloaded from the Hub once), which is much
more accurate; when it cannot load, pocketsphinx answers instead and the reason is shown.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import settings
from .manifest import UserError

RATE = 16000  # what both recognizers take
SILENCE_DBFS = -45.0  # quieter than this throughout: nothing was said
NOISE_FLATNESS = 0.45  # spectral flatness above this: hiss or static, not a voice


@dataclass(frozen=True)
class Transcript:
    text: str
    engine: str
    seconds: float  # of audio
    took_s: float
    notice: str | None = None


def audio_path(audio: Any, uploads_only: bool = False) -> str | None:
    """A path from what gradio hands over for a file: a path, a FileData or its dict. An API call's file must be one
    gradio received (its upload folder): a path the caller names is never read."""
    if audio is None or audio == "":
        return None
    if isinstance(audio, (str, os.PathLike)):
        path = str(audio)
    elif isinstance(audio, dict):
        path = audio.get("path")
    else:
        path = getattr(audio, "path", None)
    if not isinstance(path, str) or not path:
        raise UserError("audio must be a file (gradio_client.handle_file(PATH)).")
    if uploads_only:
        from gradio.utils import get_upload_folder

        if not Path(path).resolve().is_relative_to(Path(get_upload_folder()).resolve()):
            raise UserError("audio must be uploaded with the request (gradio_client.handle_file(PATH)).")
    return path


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate; UserError for a file that is too large, too long or not audio."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise UserError("The audio file could not be read (it was not received). Record or upload it again.") from None
    if size > settings.MAX_AUDIO_MB << 20:
        raise UserError(
            f"The audio file has {size / 1e6:,.1f} MB; this Space takes at most {settings.MAX_AUDIO_MB} "
            f"MB ({settings.MAX_AUDIO_S} s of speech). Record a shorter message."
        )
    try:
        import soundfile as sf

        info = sf.info(str(path))
        duration = info.frames / info.samplerate if info.samplerate else 0
        _check_duration(duration)
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except ImportError:  # without soundfile, plain PCM WAV through the standard library
        data, rate = _read_wav(path)
    except UserError:
        raise
    except Exception as exc:  # libsndfile's errors for anything that is not audio
        raise UserError(
            f"{path.name} is not an audio file this Space can read ({str(exc).splitlines()[0][:120]}). "
            "Upload a WAV, FLAC, OGG or MP3 recording."
        ) from None
    if data.size == 0:
        raise UserError("The recording is empty. Record or upload it again.")
    return data.mean(axis=1), int(rate)


def _check_duration(seconds: float) -> None:
    if seconds > settings.MAX_AUDIO_S:
        raise UserError(
            f"The recording is {seconds / 60:.1f} minutes long; this Space transcribes at most "
            f"{settings.MAX_AUDIO_S} s. Record a shorter message."
        )


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    import wave

    try:
        with wave.open(str(path), "rb") as w:
            rate, width, channels, frames = w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()
            _check_duration(frames / rate if rate else 0)
            raw = w.readframes(frames)
    except (wave.Error, EOFError) as exc:
        raise UserError(
            f"{path.name} is not a WAV file this Space can read ({exc}). Upload a 16-bit PCM WAV."
        ) from None
    if width != 2:
        raise UserError(f"{path.name}: {8 * width}-bit WAV; upload a 16-bit PCM WAV.")
    data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    return data.reshape(-1, channels), rate


def resample(samples: np.ndarray, rate: int, to: int = RATE) -> np.ndarray:
    """Band-limited resampling through the spectrum (no aliasing from a 44.1/48 kHz recording); at most a minute
    of audio, so one FFT is cheap."""
    if rate == to:
        return samples.astype(np.float32)
    n = int(round(len(samples) * to / rate))
    spectrum = np.fft.rfft(samples.astype(np.float64))
    out = np.zeros(n // 2 + 1, dtype=complex)
    keep = min(len(spectrum), len(out))
    out[:keep] = spectrum[:keep]
    return (np.fft.irfft(out, n) * (n / len(samples))).astype(np.float32)


def check_speech(samples: np.ndarray) -> None:
    """UserError for a recording that is silent or only noise (a recognizer would make words up from it)."""
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    if rms <= 0 or 20 * np.log10(rms) < SILENCE_DBFS:
        raise UserError("The recording is silent: no speech was heard. Check the microphone and record again.")
    frame = 512
    frames = samples[: len(samples) // frame * frame].reshape(-1, frame)
    loud = frames[np.sqrt((frames**2).mean(axis=1)) > rms * 0.5]  # the frames that carry the sound
    if len(loud):
        power = np.abs(np.fft.rfft(loud * np.hanning(frame), axis=1)) ** 2 + 1e-12
        flatness = float(np.median(np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)))
        if flatness > NOISE_FLATNESS:
            raise UserError(
                f"The recording sounds like noise, not speech (spectral flatness {flatness:.2f}). "
                "Record again in a quieter place, closer to the microphone."
            )


class PocketSphinx:
    name = "pocketsphinx"

    def __init__(self):
        from pocketsphinx import Decoder

        self._decoder = Decoder(samprate=RATE, loglevel="FATAL")
        self._lock = threading.Lock()  # one decoder, one utterance at a time

    def __call__(self, samples: np.ndarray) -> str:
        pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
        with self._lock:
            self._decoder.start_utt()
            self._decoder.process_raw(pcm, full_utt=True)
            self._decoder.end_utt()
            hyp = self._decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


class Whisper:
    def __init__(self, model: str):
        from faster_whisper import WhisperModel

        self.name = f"faster-whisper {model}"
        self._model = WhisperModel(model, device="cpu", compute_type="int8", cpu_threads=settings.THREADS)

    def __call__(self, samples: np.ndarray) -> str:
        segments, _ = self._model.transcribe(samples, language="en", beam_size=1)
        return " ".join(s.text.strip() for s in segments)


_recognizer = None
_fallback_reason: str | None = None
_lock = threading.Lock()


def recognizer():
    """The configured recognizer, loaded once; pocketsphinx when whisper is not chosen or cannot load."""
    global _recognizer, _fallback_reason
    with _lock:
        if _recognizer is None:
            if settings.ASR in ("whisper", "faster-whisper"):
                try:
                    _recognizer = Whisper(settings.WHISPER_MODEL)
                except Exception as exc:  # not installed, no network, no such model: the offline one answers
                    _fallback_reason = (
                        f"faster-whisper could not load ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); pocketsphinx "
                        "transcribed instead"
                    )
            if _recognizer is None:
                try:
                    _recognizer = PocketSphinx()
                except ImportError:
                    raise UserError(
                        "Voice input needs pocketsphinx (pip install pocketsphinx); type the message instead."
                    ) from None
        return _recognizer


def transcribe(path: str | os.PathLike) -> Transcript:
    """The words spoken in the audio file; UserError (with what to do) for audio that holds none."""
    samples, rate = read_audio(path)
    seconds = len(samples) / rate
    samples = resample(samples, rate)
    check_speech(samples)
    engine = recognizer()
    t0 = time.perf_counter()
    text = " ".join(engine(samples).split())
    took = time.perf_counter() - t0
    if not text:
        raise UserError(
            "No words were recognized in the recording. Speak clearly and record again, or type the message."
        )
    return Transcript(text, engine.name, round(seconds, 2), round(took, 2), _fallback_reason)
