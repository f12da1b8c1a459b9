/*
 * Compiled glue for the bridged publish (optional: built when a C compiler is present;
 * without it, the same steps run as Python in _codec.py and bridges/_runner.py).
 *
 * It implements no encoding: msgspec's MessagePack encoder writes every byte. Two
 * callables take the common case of each step and hand every other input, unchanged, to
 * the Python code they wrap, so each input gets the bytes, the answer or the error that
 * the Python code gives:
 *
 * - ``Encoder(message_cls, encode, max_size, fallback, empty)``: ``MsgpackCodec.encode``.
 *   For an exact ``Message`` whose headers are None or an exact dict and whose payload
 *   and headers are *flat* (the rule of ``_codec._flat``: leaves of the exact types str,
 *   int, float, bool, None and bytes; a dict with leaf keys, a list or a tuple whose items
 *   are leaves or lists/tuples of leaves), it builds the envelope tuple and calls the
 *   msgspec encoder on it. A result over ``max_size`` bytes, an encoder error of the kinds
 *   the Python codec turns into a refusal, or any other input goes to ``fallback`` (the
 *   Python encode), which raises the refusal naming the cause. A flat value holds no set
 *   and is shallow, so no walk is needed; that is the Python codec's own rule.
 * - ``Sink(message_cls, encode, plain, local, mem, limit, ready, other)``: a bridge's tap
 *   (``BridgeRunner._sink``). For an exact ``Message`` of a channel in ``plain`` whose
 *   origin is ``local`` while ``mem`` holds fewer than ``limit`` items, it encodes the
 *   message (``encode``; directly when that is an Encoder), appends
 *   ``(channel, data, key, persistent, 0)`` to ``mem``, calls ``ready()`` when that made
 *   ``mem`` non-empty, and returns True. Anything else is ``other(msg)``.
 *
 * - ``Maker(message_cls, counter, origin, copy, check, now)``: the bus's new-message step
 *   of ``publish``. ``make(channel, payload, priority, headers, default)`` returns None
 *   on any thread but the one ``bind()`` was called on (the bus's loop thread; None
 *   before that), else a new instance of ``message_cls`` (its ``tp_alloc``, as
 *   ``object.__new__``) with the slots the bus sets: the priority (``default`` for None,
 *   an exact int in the signed 64-bit range as it is, anything else through ``check``,
 *   which refuses it), headers copied (an exact dict with exact str keys by
 *   ``PyDict_Copy``, None when None or empty; anything else through ``copy``, which
 *   refuses bad headers), the id ``next(counter)``, the timestamp ``now()``, attempt 1,
 *   the origin, no tracker.
 *
 * Why C: the same steps in Python cost ~1.3 us per bridged publish (attribute reads, the
 * flatness loop, two calls), about half of what a Kafka bridge pays per message; here
 * they are a few loads around the msgspec call.
 *
 * Slots are read at the offsets of ``message_cls``'s member descriptors (checked to be
 * writable object slots when a callable is made), from instances whose type is exactly
 * ``message_cls``; an unset slot takes the Python path. Values are held with a new
 * reference across every call that can run Python code.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>

#ifndef Py_T_OBJECT_EX
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif
#ifndef Py_READONLY
#define Py_READONLY READONLY
#endif

enum { F_ID, F_CHANNEL, F_PRIORITY, F_TIMESTAMP, F_HEADERS, F_PAYLOAD, F_ATTEMPT, F_ORIGIN, F_COUNT };
static const char *const slot_names[F_COUNT] = {
    "_id", "channel", "priority", "timestamp", "_headers", "payload", "attempt", "origin",
};

#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* Exception kinds of the msgspec encoder that the Python codec turns into a refusal (the
   fallback raises it, naming the cause); any other error propagates as it is. */
static PyObject *refusal_kinds;

/* The offsets of ``cls``'s slots in slot_names order; -1 with TypeError when ``cls`` is
   not a type whose attributes of those names are all writable object slots. */
static int
slot_offsets(PyObject *cls, Py_ssize_t *offsets)
{
    if (!PyType_Check(cls)) {
        PyErr_Format(PyExc_TypeError, "message_cls must be a type, got %.80s",
                     Py_TYPE(cls)->tp_name);
        return -1;
    }
    PyObject *dict = ((PyTypeObject *)cls)->tp_dict;
    for (int i = 0; i < F_COUNT; i++) {
        PyObject *descr = dict == NULL ? NULL : PyDict_GetItemString(dict, slot_names[i]);
        if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
            PyErr_Format(PyExc_TypeError, "message_cls has no slot %s", slot_names[i]);
            return -1;
        }
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type != Py_T_OBJECT_EX || (member->flags & Py_READONLY)
            || member->offset < (Py_ssize_t)sizeof(PyObject)
            || member->offset + (Py_ssize_t)sizeof(PyObject *)
                   > ((PyTypeObject *)cls)->tp_basicsize) {
            PyErr_Format(PyExc_TypeError, "message_cls slot %s is not a writable object slot",
                         slot_names[i]);
            return -1;
        }
        offsets[i] = member->offset;
    }
    return 0;
}

static inline int
is_leaf(PyObject *obj)
{
    PyTypeObject *t = Py_TYPE(obj);
    return t == &PyUnicode_Type || t == &PyLong_Type || t == &PyFloat_Type
           || t == &PyBool_Type || obj == Py_None || t == &PyBytes_Type;
}

/* A leaf, or an exact list/tuple of leaves. */
static inline int
flat_item(PyObject *obj)
{
    if (is_leaf(obj)) {
        return 1;
    }
    PyObject **items;
    Py_ssize_t n;
    if (PyList_CheckExact(obj)) {
        items = ((PyListObject *)obj)->ob_item;
        n = PyList_GET_SIZE(obj);
    }
    else if (PyTuple_CheckExact(obj)) {
        items = ((PyTupleObject *)obj)->ob_item;
        n = PyTuple_GET_SIZE(obj);
    }
    else {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!is_leaf(items[i])) {
            return 0;
        }
    }
    return 1;
}

/* ``_codec._flat``: an exact dict with leaf keys, or an exact list or tuple, whose items
   all pass flat_item. Runs no Python code. */
static int
flat(PyObject *obj)
{
    if (PyDict_CheckExact(obj)) {
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(obj, &pos, &key, &value)) {
            if (!is_leaf(key) || !flat_item(value)) {
                return 0;
            }
        }
        return 1;
    }
    PyObject **items;
    Py_ssize_t n;
    if (PyList_CheckExact(obj)) {
        items = ((PyListObject *)obj)->ob_item;
        n = PyList_GET_SIZE(obj);
    }
    else if (PyTuple_CheckExact(obj)) {
        items = ((PyTupleObject *)obj)->ob_item;
        n = PyTuple_GET_SIZE(obj);
    }
    else {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!flat_item(items[i])) {
            return 0;
        }
    }
    return 1;
}

/* -- Encoder ------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *message;  /* the Message class, compared by identity */
    PyObject *encode;   /* msgspec Encoder.encode (bound) */
    PyObject *fallback; /* the Python encode: every input the fast path does not take */
    PyObject *empty;    /* the dict encoded for a message without headers */
    PyObject *envelope; /* a tuple of F_COUNT NULL items between calls, untracked */
    Py_ssize_t max_size;
    Py_ssize_t offsets[F_COUNT];
} Encoder;

static PyTypeObject EncoderType;

/* The bytes of ``msg``, or NULL with an exception set. */
static PyObject *
encoder_encode(Encoder *self, PyObject *msg)
{
    if (self->message == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "encoder was cleared");
        return NULL;
    }
    if ((PyObject *)Py_TYPE(msg) != self->message) {
        goto fallback;
    }
    PyObject *fields[F_COUNT];
    for (int i = 0; i < F_COUNT; i++) {
        fields[i] = SLOT(msg, self->offsets[i]);
        if (fields[i] == NULL) {
            goto fallback;
        }
    }
    PyObject *headers = fields[F_HEADERS], *payload = fields[F_PAYLOAD];
    if (headers == Py_None || (PyDict_CheckExact(headers) && PyDict_GET_SIZE(headers) == 0)) {
        fields[F_HEADERS] = self->empty;
    }
    else if (!PyDict_CheckExact(headers) || !flat(headers)) {
        goto fallback;
    }
    if (!is_leaf(payload) && !flat(payload)) {
        goto fallback;
    }
    /* The flatness checks ran no Python code: the fields are still the message's. The
       envelope tuple is reused while nothing else holds it (the encoder runs no Python
       code on flat values, so nothing can keep it); its items are cleared right after. */
    PyObject *envelope = self->envelope;
    if (Py_REFCNT(envelope) == 1) {
        Py_INCREF(envelope);
    }
    else {
        envelope = PyTuple_New(F_COUNT);
        if (envelope == NULL) {
            return NULL;
        }
    }
    for (int i = 0; i < F_COUNT; i++) {
        PyTuple_SET_ITEM(envelope, i, Py_NewRef(fields[i]));
    }
    PyObject *data = PyObject_CallOneArg(self->encode, envelope);
    if (envelope == self->envelope) {
        for (int i = 0; i < F_COUNT; i++) {
            PyObject *item = PyTuple_GET_ITEM(envelope, i);
            PyTuple_SET_ITEM(envelope, i, NULL);
            Py_DECREF(item);
        }
    }
    Py_DECREF(envelope);
    if (data == NULL) {
        if (!PyErr_ExceptionMatches(refusal_kinds)) {
            return NULL;
        }
        PyErr_Clear();
        goto fallback;
    }
    if (!PyBytes_CheckExact(data) || PyBytes_GET_SIZE(data) > self->max_size) {
        Py_DECREF(data);
        goto fallback;
    }
    return data;
fallback:
    return PyObject_CallOneArg(self->fallback, msg);
}

static PyObject *
encoder_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_Format(PyExc_TypeError, "encode() takes exactly one positional argument (%zd given)",
                     nargs);
        return NULL;
    }
    return encoder_encode((Encoder *)op, args[0]);
}

static PyObject *
encoder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"message_cls", "encode", "max_size", "fallback", "empty", NULL};
    PyObject *message, *encode, *fallback, *empty;
    Py_ssize_t max_size;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOnOO!", names, &message, &encode,
                                     &max_size, &fallback, &PyDict_Type, &empty)) {
        return NULL;
    }
    if (!PyCallable_Check(encode) || !PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "encode and fallback must be callable");
        return NULL;
    }
    if (max_size < 0) {
        PyErr_Format(PyExc_ValueError, "max_size must be >= 0, got %zd", max_size);
        return NULL;
    }
    Py_ssize_t offsets[F_COUNT];
    if (slot_offsets(message, offsets) < 0) {
        return NULL;
    }
    PyObject *envelope = PyTuple_New(F_COUNT);
    if (envelope == NULL) {
        return NULL;
    }
    PyObject_GC_UnTrack(envelope); /* holds items only inside one encoder call */
    Encoder *self = PyObject_GC_New(Encoder, type);
    if (self == NULL) {
        Py_DECREF(envelope);
        return NULL;
    }
    self->envelope = envelope;
    self->vectorcall = encoder_vectorcall;
    self->message = Py_NewRef(message);
    self->encode = Py_NewRef(encode);
    self->fallback = Py_NewRef(fallback);
    self->empty = Py_NewRef(empty);
    self->max_size = max_size;
    memcpy(self->offsets, offsets, sizeof(offsets));
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static int
encoder_traverse(Encoder *self, visitproc visit, void *arg)
{
    Py_VISIT(self->message);
    Py_VISIT(self->encode);
    Py_VISIT(self->fallback);
    Py_VISIT(self->empty);
    return 0;
}

static int
encoder_clear(Encoder *self)
{
    Py_CLEAR(self->message);
    Py_CLEAR(self->encode);
    Py_CLEAR(self->fallback);
    Py_CLEAR(self->empty);
    Py_CLEAR(self->envelope);
    return 0;
}

static void
encoder_dealloc(Encoder *self)
{
    PyObject_GC_UnTrack(self);
    encoder_clear(self);
    PyObject_GC_Del(self);
}

static PyObject *
encoder_call(PyObject *op, PyObject *args, PyObject *kwargs)
{
    Encoder *self = (Encoder *)op;
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) != 1
        || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_Format(PyExc_TypeError, "encode() takes exactly one positional argument");
        return NULL;
    }
    return encoder_encode(self, PyTuple_GET_ITEM(args, 0));
}

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "neuralcore.messaging._accel.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Encoder(message_cls, encode, max_size, fallback, empty): MsgpackCodec.encode's "
              "common case in C (see the module docstring).",
    .tp_vectorcall_offset = offsetof(Encoder, vectorcall),
    .tp_call = encoder_call,
    .tp_new = encoder_new,
    .tp_traverse = (traverseproc)encoder_traverse,
    .tp_clear = (inquiry)encoder_clear,
    .tp_dealloc = (destructor)encoder_dealloc,
};

/* -- Maker ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *message; /* the Message class (instances made with its tp_alloc) */
    PyObject *counter; /* the bus's id counter (an iterator) */
    PyObject *origin;  /* the bus id */
    PyObject *copy;    /* the Python copy_headers: headers other than an exact dict */
    PyObject *check;   /* the Python check_priority: a priority other than an exact int64 */
    PyObject *now;     /* time.time */
    PyObject *one;     /* 1: the first attempt */
    unsigned long owner; /* the thread make() serves (bind()); others get None */
    int bound;
    Py_ssize_t offsets[F_COUNT];
    Py_ssize_t off_tracker;
} Maker;

/* A copy of ``headers`` as copy_headers gives it (None when None or empty), or NULL
   with an exception set. */
static PyObject *
maker_headers(Maker *self, PyObject *headers)
{
    if (headers == Py_None) {
        return Py_NewRef(Py_None);
    }
    if (!PyDict_CheckExact(headers)) {
        return PyObject_CallOneArg(self->copy, headers);
    }
    if (PyDict_GET_SIZE(headers) == 0) {
        return Py_NewRef(Py_None);
    }
    PyObject *out = PyDict_Copy(headers);
    if (out == NULL) {
        return NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(out, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            Py_DECREF(out);
            return PyObject_CallOneArg(self->copy, headers); /* raises, naming the type */
        }
    }
    return out;
}

/* The priority as the bus's fast path resolves it: ``default`` for None, an exact int in
   the signed 64-bit range as it is, anything else through ``check`` (which refuses it or
   returns the int to use). NULL with an exception set. */
static PyObject *
maker_priority(Maker *self, PyObject *priority, PyObject *fallback)
{
    if (priority == Py_None) {
        return Py_NewRef(fallback);
    }
    if (PyLong_CheckExact(priority)) {
        int overflow = 0;
        PyLong_AsLongLongAndOverflow(priority, &overflow);
        if (overflow == 0) {
            return Py_NewRef(priority);
        }
    }
    return PyObject_CallOneArg(self->check, priority);
}

static PyObject *
maker_make(Maker *self, PyObject *const *args)
{
    if (self->message == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "maker was cleared");
        return NULL;
    }
    if (!self->bound || PyThread_get_thread_ident() != self->owner) {
        Py_RETURN_NONE; /* not the loop thread (or not started): the caller's slow path */
    }
    PyObject *priority = maker_priority(self, args[2], args[4]);
    if (priority == NULL) {
        return NULL;
    }
    PyObject *headers = maker_headers(self, args[3]);
    if (headers == NULL) {
        Py_DECREF(priority);
        return NULL;
    }
    PyObject *id = PyIter_Next(self->counter);
    if (id == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "message id counter is exhausted");
        }
        Py_DECREF(headers);
        Py_DECREF(priority);
        return NULL;
    }
    PyObject *timestamp = PyObject_CallNoArgs(self->now);
    if (timestamp == NULL) {
        Py_DECREF(id);
        Py_DECREF(headers);
        Py_DECREF(priority);
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)self->message;
    PyObject *msg = cls->tp_alloc(cls, 0);
    if (msg == NULL) {
        Py_DECREF(timestamp);
        Py_DECREF(id);
        Py_DECREF(headers);
        Py_DECREF(priority);
        return NULL;
    }
    /* A fresh instance: every slot is NULL; each takes a new reference. */
    SLOT(msg, self->offsets[F_CHANNEL]) = Py_NewRef(args[0]);
    SLOT(msg, self->offsets[F_PAYLOAD]) = Py_NewRef(args[1]);
    SLOT(msg, self->offsets[F_PRIORITY]) = priority;
    SLOT(msg, self->offsets[F_HEADERS]) = headers;
    SLOT(msg, self->offsets[F_ID]) = id;
    SLOT(msg, self->offsets[F_TIMESTAMP]) = timestamp;
    SLOT(msg, self->offsets[F_ATTEMPT]) = Py_NewRef(self->one);
    SLOT(msg, self->offsets[F_ORIGIN]) = Py_NewRef(self->origin);
    SLOT(msg, self->off_tracker) = Py_NewRef(Py_None);
    return msg;
}

static PyObject *
maker_bind(PyObject *op, PyObject *Py_UNUSED(args))
{
    Maker *self = (Maker *)op;
    self->owner = PyThread_get_thread_ident();
    self->bound = 1;
    Py_RETURN_NONE;
}

static PyMethodDef maker_methods[] = {
    {"bind", maker_bind, METH_NOARGS,
     "bind(): serve the calling thread from now on (the bus's loop thread)."},
    {NULL, NULL, 0, NULL},
};

static PyObject *
maker_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 5 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_Format(PyExc_TypeError,
                     "make() takes exactly 5 positional arguments (%zd given)", nargs);
        return NULL;
    }
    return maker_make((Maker *)op, args);
}

static PyObject *
maker_call(PyObject *op, PyObject *args, PyObject *kwargs)
{
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) != 5
        || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_Format(PyExc_TypeError, "make() takes exactly 5 positional arguments");
        return NULL;
    }
    return maker_make((Maker *)op, ((PyTupleObject *)args)->ob_item);
}

static PyObject *
maker_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"message_cls", "counter", "origin", "copy", "check", "now", NULL};
    PyObject *message, *counter, *origin, *copy, *check, *now;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOUOOO", names, &message, &counter,
                                     &origin, &copy, &check, &now)) {
        return NULL;
    }
    if (!PyIter_Check(counter) || !PyCallable_Check(copy) || !PyCallable_Check(check)
        || !PyCallable_Check(now)) {
        PyErr_SetString(PyExc_TypeError,
                        "counter must be an iterator; copy, check and now callable");
        return NULL;
    }
    Py_ssize_t offsets[F_COUNT];
    if (slot_offsets(message, offsets) < 0) {
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)message;
    PyObject *descr = PyDict_GetItemString(cls->tp_dict, "_tracker");
    if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)
        || ((PyMemberDescrObject *)descr)->d_member->type != Py_T_OBJECT_EX
        || cls->tp_itemsize != 0 || cls->tp_dictoffset != 0
        || cls->tp_new != PyBaseObject_Type.tp_new) {
        PyErr_SetString(PyExc_TypeError,
                        "message_cls must be a plain __slots__ class with a _tracker slot");
        return NULL;
    }
    Maker *self = PyObject_GC_New(Maker, type);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = maker_vectorcall;
    self->message = Py_NewRef(message);
    self->counter = Py_NewRef(counter);
    self->origin = Py_NewRef(origin);
    self->copy = Py_NewRef(copy);
    self->check = Py_NewRef(check);
    self->now = Py_NewRef(now);
    self->owner = 0;
    self->bound = 0;
    self->one = PyLong_FromLong(1);
    memcpy(self->offsets, offsets, sizeof(offsets));
    self->off_tracker = ((PyMemberDescrObject *)descr)->d_member->offset;
    PyObject_GC_Track(self);
    if (self->one == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
maker_traverse(Maker *self, visitproc visit, void *arg)
{
    Py_VISIT(self->message);
    Py_VISIT(self->counter);
    Py_VISIT(self->origin);
    Py_VISIT(self->copy);
    Py_VISIT(self->check);
    Py_VISIT(self->now);
    Py_VISIT(self->one);
    return 0;
}

static int
maker_clear(Maker *self)
{
    Py_CLEAR(self->message);
    Py_CLEAR(self->counter);
    Py_CLEAR(self->origin);
    Py_CLEAR(self->copy);
    Py_CLEAR(self->check);
    Py_CLEAR(self->now);
    Py_CLEAR(self->one);
    return 0;
}

static void
maker_dealloc(Maker *self)
{
    PyObject_GC_UnTrack(self);
    maker_clear(self);
    PyObject_GC_Del(self);
}

static PyTypeObject MakerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "neuralcore.messaging._accel.Maker",
    .tp_basicsize = sizeof(Maker),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Maker(message_cls, counter, origin, copy, check, now): the bus's new-message "
              "step in C (see the module docstring).",
    .tp_methods = maker_methods,
    .tp_vectorcall_offset = offsetof(Maker, vectorcall),
    .tp_call = maker_call,
    .tp_new = maker_new,
    .tp_traverse = (traverseproc)maker_traverse,
    .tp_clear = (inquiry)maker_clear,
    .tp_dealloc = (destructor)maker_dealloc,
};

/* -- Sink ---------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *message; /* the Message class, compared by identity */
    PyObject *encode;  /* the codec's encode (an Encoder is called directly) */
    PyObject *plain;   /* dict: channel -> (key, persistent) */
    PyObject *local;   /* this bus's id */
    PyObject *mem;     /* the buffer's deque */
    PyObject *append;  /* mem.append */
    PyObject *ready;   /* called when an append made mem non-empty */
    PyObject *other;   /* every message the fast path does not take */
    PyObject *zero;    /* 0: the seq of a message not recorded in the outbox */
    Py_ssize_t limit;
    Py_ssize_t off_channel, off_origin;
} Sink;

/* Encode ``msg`` (``encode``; directly when that is an Encoder) and append
   ``(channel, data, key, persistent, 0)`` to ``mem`` (``route`` is ``(key, persistent)``),
   calling ``ready()`` when that made ``mem`` non-empty: 0, or -1 with an exception set
   (SerializationError from the encoder: the bus refuses the publish with it). */
static int
sink_buffer(Sink *self, PyObject *msg, PyObject *channel, PyObject *route)
{
    PyObject *data;
    if (Py_IS_TYPE(self->encode, &EncoderType)) {
        data = encoder_encode((Encoder *)self->encode, msg);
    }
    else {
        data = PyObject_CallOneArg(self->encode, msg);
    }
    if (data == NULL) {
        return -1;
    }
    PyObject *key = PyTuple_GET_ITEM(route, 0), *persistent = PyTuple_GET_ITEM(route, 1);
    PyObject *item = PyTuple_Pack(5, channel, data, key, persistent, self->zero);
    Py_DECREF(data);
    if (item == NULL) {
        return -1;
    }
    if (PyUnicode_CheckExact(channel) && (key == Py_None || PyBytes_CheckExact(key))
        && PyBool_Check(persistent)) {
        /* Atomic values only (as the collector itself would find): never in a cycle. A
           buffer of many thousand items then costs the collector nothing. */
        PyObject_GC_UnTrack(item);
    }
    PyObject *appended = PyObject_CallOneArg(self->append, item);
    Py_DECREF(item);
    if (appended == NULL) {
        return -1;
    }
    Py_DECREF(appended);
    Py_ssize_t held = PyObject_Size(self->mem);
    if (held < 0) {
        return -1;
    }
    if (held == 1) {
        PyObject *woken = PyObject_CallNoArgs(self->ready);
        if (woken == NULL) {
            return -1;
        }
        Py_DECREF(woken);
    }
    return 0;
}

static PyObject *
sink_take(Sink *self, PyObject *msg)
{
    if (self->message == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "sink was cleared");
        return NULL;
    }
    if ((PyObject *)Py_TYPE(msg) != self->message) {
        return PyObject_CallOneArg(self->other, msg);
    }
    PyObject *channel = SLOT(msg, self->off_channel);
    PyObject *origin = SLOT(msg, self->off_origin);
    if (channel == NULL || origin == NULL) {
        return PyObject_CallOneArg(self->other, msg);
    }
    PyObject *result = NULL, *route = NULL;
    Py_INCREF(channel);
    Py_INCREF(origin);
    route = PyDict_GetItemWithError(self->plain, channel);
    if (route == NULL) {
        if (!PyErr_Occurred()) {
            result = PyObject_CallOneArg(self->other, msg);
        }
        goto done;
    }
    Py_INCREF(route);
    int differs = origin == self->local ? 0 : PyObject_RichCompareBool(origin, self->local, Py_NE);
    if (differs < 0) {
        goto done;
    }
    Py_ssize_t held = PyObject_Size(self->mem);
    if (held < 0) {
        goto done;
    }
    if (differs || held >= self->limit || !PyTuple_CheckExact(route)
        || PyTuple_GET_SIZE(route) != 2) {
        result = PyObject_CallOneArg(self->other, msg);
        goto done;
    }
    if (sink_buffer(self, msg, channel, route) == 0) {
        result = Py_NewRef(Py_True);
    }
done:
    Py_XDECREF(route);
    Py_DECREF(origin);
    Py_DECREF(channel);
    return result;
}

static PyObject *
sink_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        PyErr_Format(PyExc_TypeError, "sink() takes exactly one positional argument (%zd given)",
                     nargs);
        return NULL;
    }
    return sink_take((Sink *)op, args[0]);
}

static PyObject *
sink_call(PyObject *op, PyObject *args, PyObject *kwargs)
{
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) != 1
        || (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0)) {
        PyErr_Format(PyExc_TypeError, "sink() takes exactly one positional argument");
        return NULL;
    }
    return sink_take((Sink *)op, PyTuple_GET_ITEM(args, 0));
}

/* sink.publish(make, channel, payload, priority, headers, default): the bus's publish
   fast path for a channel whose only tap is this one, in one call: when the tap is sure
   to take the message, the message ``make`` makes, buffered as ``sink(msg)`` would
   buffer it. Sure means: ``channel`` has a plain route, ``mem`` has room, ``make`` is a
   Maker stamping this bus's id, the encoder is an Encoder, the payload is flat, the
   headers are None or a flat exact dict and the priority is None or an exact int. Then
   making the message runs no code of the caller's, and the encoder (which checks the
   message again: a collection while the message is made may run finalizers) can fail
   only with a refusal (SerializationError, raised as the tap raises it) or
   MemoryError; the general path would end the same way, and nothing is buffered. None, with nothing made, when one of
   those does not hold or the maker returns None (not the loop thread): the caller's
   general path decides, and calls the tap itself. */
static PyObject *
sink_publish(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    Sink *self = (Sink *)op;
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError, "publish() takes exactly 6 positional arguments (%zd given)",
                     nargs);
        return NULL;
    }
    if (self->message == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "sink was cleared");
        return NULL;
    }
    if (!Py_IS_TYPE(args[0], &MakerType)) {
        Py_RETURN_NONE;
    }
    Maker *maker = (Maker *)args[0];
    if (maker->message != self->message || maker->origin == NULL
        || !Py_IS_TYPE(self->encode, &EncoderType)) {
        Py_RETURN_NONE;
    }

    if (maker->origin != self->local) {
        int same = PyObject_RichCompareBool(maker->origin, self->local, Py_EQ);
        if (same <= 0) {
            return same < 0 ? NULL : Py_NewRef(Py_None);
        }
    }
    PyObject *channel = args[1];
    PyObject *route = PyDict_GetItemWithError(self->plain, channel);
    if (route == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    if (!PyTuple_CheckExact(route) || PyTuple_GET_SIZE(route) != 2) {
        Py_RETURN_NONE;
    }
    Py_INCREF(route);
    PyObject *result = NULL;
    Py_ssize_t held = PyObject_Size(self->mem);
    if (held < 0) {
        goto done;
    }
    /* Checked last: the lookups above may run Python code (a str subclass's __eq__). */
    PyObject *payload = args[2], *priority = args[3], *headers = args[4];
    if (held >= self->limit || (priority != Py_None && !PyLong_CheckExact(priority))
        || (headers != Py_None && !(PyDict_CheckExact(headers) && flat(headers)))
        || (!is_leaf(payload) && !flat(payload))) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *msg = maker_make(maker, args + 1);
    if (msg == NULL || msg == Py_None) {
        result = msg;
        goto done;
    }
    if (sink_buffer(self, msg, channel, route) < 0) {
        Py_DECREF(msg);
        goto done;
    }
    result = msg;
done:
    Py_DECREF(route);
    return result;
}

static PyMethodDef sink_methods[] = {
    {"publish", (PyCFunction)(void (*)(void))sink_publish, METH_FASTCALL,
     "publish(make, channel, payload, priority, headers, default): the message taken, or None."},
    {NULL, NULL, 0, NULL},
};

static PyObject *
sink_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"message_cls", "encode", "plain", "local", "mem",
                            "limit", "ready", "other", NULL};
    PyObject *message, *encode, *plain, *local, *mem, *ready, *other;
    Py_ssize_t limit;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO!UOnOO", names, &message, &encode,
                                     &PyDict_Type, &plain, &local, &mem,
                                     &limit, &ready, &other)) {
        return NULL;
    }
    if (!PyCallable_Check(encode) || !PyCallable_Check(ready) || !PyCallable_Check(other)) {
        PyErr_SetString(PyExc_TypeError, "encode, ready and other must be callable");
        return NULL;
    }
    Py_ssize_t offsets[F_COUNT];
    if (slot_offsets(message, offsets) < 0) {
        return NULL;
    }
    PyObject *append = PyObject_GetAttrString(mem, "append");
    if (append == NULL) {
        return NULL;
    }
    if (PyObject_Size(mem) < 0) {
        Py_DECREF(append);
        return NULL;
    }
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) {
        Py_DECREF(append);
        return NULL;
    }
    Sink *self = PyObject_GC_New(Sink, type);
    if (self == NULL) {
        Py_DECREF(append);
        Py_DECREF(zero);
        return NULL;
    }
    self->vectorcall = sink_vectorcall;
    self->message = Py_NewRef(message);
    self->encode = Py_NewRef(encode);
    self->plain = Py_NewRef(plain);
    self->local = Py_NewRef(local);
    self->mem = Py_NewRef(mem);
    self->append = append;
    self->ready = Py_NewRef(ready);
    self->other = Py_NewRef(other);
    self->zero = zero;
    self->limit = limit;
    self->off_channel = offsets[F_CHANNEL];
    self->off_origin = offsets[F_ORIGIN];
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static int
sink_traverse(Sink *self, visitproc visit, void *arg)
{
    Py_VISIT(self->message);
    Py_VISIT(self->encode);
    Py_VISIT(self->plain);
    Py_VISIT(self->local);
    Py_VISIT(self->mem);
    Py_VISIT(self->append);
    Py_VISIT(self->ready);
    Py_VISIT(self->other);
    Py_VISIT(self->zero);
    return 0;
}

static int
sink_clear(Sink *self)
{
    Py_CLEAR(self->message);
    Py_CLEAR(self->encode);
    Py_CLEAR(self->plain);
    Py_CLEAR(self->local);
    Py_CLEAR(self->mem);
    Py_CLEAR(self->append);
    Py_CLEAR(self->ready);
    Py_CLEAR(self->other);
    Py_CLEAR(self->zero);
    return 0;
}

static void
sink_dealloc(Sink *self)
{
    PyObject_GC_UnTrack(self);
    sink_clear(self);
    PyObject_GC_Del(self);
}

static PyTypeObject SinkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "neuralcore.messaging._accel.Sink",
    .tp_basicsize = sizeof(Sink),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Sink(message_cls, encode, plain, local, mem, limit, ready, other): a bridge "
              "tap's common case in C (see the module docstring).",
    .tp_methods = sink_methods,
    .tp_vectorcall_offset = offsetof(Sink, vectorcall),
    .tp_call = sink_call,
    .tp_new = sink_new,
    .tp_traverse = (traverseproc)sink_traverse,
    .tp_clear = (inquiry)sink_clear,
    .tp_dealloc = (destructor)sink_dealloc,
};

/* -- pack_items ----------------------------------------------------------------------- */

/* The pack value (``_kafka.pack``) of the data of items[start:stop], or, for one item, its
   data itself. */
static PyObject *
pack_chunk(PyObject *held, Py_ssize_t start, Py_ssize_t stop, Py_ssize_t size, PyObject *magic)
{
    if (stop - start == 1) {
        return Py_NewRef(PyTuple_GET_ITEM(PyTuple_GET_ITEM(held, start), 1));
    }
    Py_ssize_t head = PyBytes_GET_SIZE(magic);
    PyObject *value = PyBytes_FromStringAndSize(NULL, head + 4 + size);
    if (value == NULL) {
        return NULL;
    }
    unsigned char *out = (unsigned char *)PyBytes_AS_STRING(value);
    memcpy(out, PyBytes_AS_STRING(magic), head);
    out += head;
    uint32_t count = (uint32_t)(stop - start);
    out[0] = (unsigned char)(count >> 24);
    out[1] = (unsigned char)(count >> 16);
    out[2] = (unsigned char)(count >> 8);
    out[3] = (unsigned char)count;
    unsigned char *lengths = out + 4, *body = out + 4 + 4 * (Py_ssize_t)count;
    for (Py_ssize_t i = start; i < stop; i++, lengths += 4) {
        PyObject *data = PyTuple_GET_ITEM(PyTuple_GET_ITEM(held, i), 1);
        uint32_t length = (uint32_t)PyBytes_GET_SIZE(data);
        lengths[0] = (unsigned char)(length >> 24);
        lengths[1] = (unsigned char)(length >> 16);
        lengths[2] = (unsigned char)(length >> 8);
        lengths[3] = (unsigned char)length;
        memcpy(body, PyBytes_AS_STRING(data), length);
        body += length;
    }
    return value;
}

/* pack_items(items, magic, limit, max_bytes): the record values ``_kafka`` makes of a
   list of at least two outgoing items ``(channel, data, key, ...)`` that share one
   channel and one key (compared as a set compares them: identity, then ==) and whose
   data are all exact bytes of at most 2**32 - 1 bytes: consecutive chunks of at most
   ``limit`` data, a chunk closed before a data that would take its size (lengths plus 4
   per data already in it) over ``max_bytes``; each chunk packed, one alone as itself.
   None for anything else (the Python framing decides then). */
static PyObject *
pack_items(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyList_CheckExact(args[0]) || !PyBytes_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "pack_items(items: list, magic: bytes, limit, max_bytes)");
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[2]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t max_bytes = PyLong_AsSsize_t(args[3]);
    if (max_bytes == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *magic = args[1];
    if (limit < 2 || limit > 0xFFFFFFFFL || PyList_GET_SIZE(args[0]) < 2) {
        Py_RETURN_NONE;
    }
    /* Hold the list's items: the comparisons below may run Python code. */
    PyObject *held = PyList_AsTuple(args[0]);
    if (held == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(held);
    PyObject *result = NULL, *out = NULL;
    PyObject *first = PyTuple_GET_ITEM(held, 0);
    if (!PyTuple_CheckExact(first) || PyTuple_GET_SIZE(first) < 3) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *channel = PyTuple_GET_ITEM(first, 0), *key = PyTuple_GET_ITEM(first, 2);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(held, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) < 3
            || !PyBytes_CheckExact(PyTuple_GET_ITEM(item, 1))
            || PyBytes_GET_SIZE(PyTuple_GET_ITEM(item, 1)) > 0xFFFFFFFFL) {
            result = Py_NewRef(Py_None);
            goto done;
        }
        for (int field = 0; field < 3; field += 2) {
            PyObject *want = field == 0 ? channel : key, *got = PyTuple_GET_ITEM(item, field);
            if (got != want) {
                int same = PyObject_RichCompareBool(want, got, Py_EQ);
                if (same < 0) {
                    goto done;
                }
                if (!same) {
                    result = Py_NewRef(Py_None);
                    goto done;
                }
            }
        }
    }
    out = PyList_New(0);
    if (out == NULL) {
        goto done;
    }
    Py_ssize_t start = 0, size = 0;
    for (Py_ssize_t i = 0; i <= n; i++) {
        Py_ssize_t length = i < n ? PyBytes_GET_SIZE(PyTuple_GET_ITEM(PyTuple_GET_ITEM(held, i), 1)) : 0;
        if (i == n || (i > start && (i - start >= limit || size + length > max_bytes))) {
            PyObject *value = pack_chunk(held, start, i, size, magic);
            if (value == NULL || PyList_Append(out, value) < 0) {
                Py_XDECREF(value);
                goto done;
            }
            Py_DECREF(value);
            start = i;
            size = 0;
        }
        size += length + 4;
    }
    result = Py_NewRef(out);
done:
    Py_XDECREF(out);
    Py_DECREF(held);
    return result;
}

static PyMethodDef accel_functions[] = {
    {"pack_items", (PyCFunction)(void (*)(void))pack_items, METH_FASTCALL,
     "pack_items(items, magic, limit, max_bytes): the Kafka record values, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef accel_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "neuralcore.messaging._accel",
    .m_doc = "The bridged publish's common case in C (msgspec encodes; no encoding here).",
    .m_size = -1,
    .m_methods = accel_functions,
};

PyMODINIT_FUNC
PyInit__accel(void)
{
    if (PyType_Ready(&EncoderType) < 0 || PyType_Ready(&SinkType) < 0
        || PyType_Ready(&MakerType) < 0) {
        return NULL;
    }
    refusal_kinds = Py_BuildValue("(OOOOO)", PyExc_TypeError, PyExc_NotImplementedError,
                                  PyExc_OverflowError, PyExc_ValueError, PyExc_RecursionError);
    if (refusal_kinds == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&accel_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Encoder", (PyObject *)&EncoderType) < 0
        || PyModule_AddObjectRef(module, "Sink", (PyObject *)&SinkType) < 0
        || PyModule_AddObjectRef(module, "Maker", (PyObject *)&MakerType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
