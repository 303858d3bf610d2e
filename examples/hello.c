/* hello.c — a complete read-only file system: one directory holding one
 * file, "hello", that reads "Hello, world!\n". Objects are static, so forget
 * has nothing to free.  Run: ./build/hello -f /tmp/h ; cat /tmp/h/hello */
#include <fsp/fsp.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>

static const char text[] = "Hello, world!\n";
static int root_obj, file_obj;   /* their addresses are the objects */
#define FILE_INO 2

static void fill(struct stat *st, void *obj)
{
	memset(st, 0, sizeof(*st));
	if (obj == &root_obj) {
		st->st_ino = FSP_ROOT_INO;
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_ino = FILE_INO;
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = sizeof(text) - 1;
	}
}

static int hello_lookup(fsp_req *r, void *dir, const char *name, struct fsp_entry *e)
{
	(void)r;
	if (dir != &root_obj || strcmp(name, "hello") != 0)
		return -ENOENT;
	e->ino = FILE_INO;
	e->obj = &file_obj;
	fill(&e->attr, &file_obj);
	return 0;
}

static void hello_forget(fsp_session *s, void *obj, uint64_t n)
{
	(void)s, (void)obj, (void)n;    /* static objects: nothing to free */
}

static int hello_getattr(fsp_req *r, void *obj, void *fh, struct stat *st)
{
	(void)r, (void)fh;
	fill(st, obj);
	return 0;
}

static int hello_open(fsp_req *r, void *obj, int flags, struct fsp_open_out *o)
{
	(void)r, (void)obj, (void)o;
	return (flags & O_ACCMODE) == O_RDONLY ? 0 : -EACCES;
}

static ssize_t hello_read(fsp_req *r, void *obj, void *fh, void *buf, size_t size, off_t off)
{
	(void)r, (void)obj, (void)fh;
	if (off >= (off_t)sizeof(text) - 1)
		return 0;
	if (size > sizeof(text) - 1 - (size_t)off)
		size = sizeof(text) - 1 - (size_t)off;
	memcpy(buf, text + off, size);
	return (ssize_t)size;
}

static int hello_readdir(fsp_req *r, void *obj, void *fh, off_t off, fsp_dirbuf *db)
{
	(void)r, (void)obj, (void)fh;
	/* offsets: 1 after ".", 2 after "..", 3 after "hello" */
	if (off < 1 && fsp_dirbuf_add(db, ".", FSP_ROOT_INO, S_IFDIR, 1))
		return 0;
	if (off < 2 && fsp_dirbuf_add(db, "..", FSP_ROOT_INO, S_IFDIR, 2))
		return 0;
	if (off < 3)
		fsp_dirbuf_add(db, "hello", FILE_INO, S_IFREG, 3);
	return 0;
}

static const struct fsp_operations hello_ops = {
	.lookup = hello_lookup,
	.forget = hello_forget,
	.getattr = hello_getattr,
	.open = hello_open,
	.read = hello_read,
	.readdir = hello_readdir,
};

int main(int argc, char **argv)
{
	return fsp_main(argc, argv, &hello_ops, &root_obj, NULL,
			"A read-only file system with one file, hello.\n\n", NULL, NULL);
}
