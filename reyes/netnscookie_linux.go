package reyes

import (
	"strconv"
	"syscall"
	"unsafe"
)

// soNetnsCookie is SO_NETNS_COOKIE (Linux 5.14 and later): the network
// namespace's cookie, a number the kernel never hands out twice in one
// boot, unlike the namespace's inode number.
const soNetnsCookie = 71

// netnsCookie returns the cookie of this process's network namespace, as
// a socket of it reports it, or "" on a kernel that cannot say.
func netnsCookie() string {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return ""
	}
	defer syscall.Close(fd)
	var cookie uint64
	size := uint32(unsafe.Sizeof(cookie))
	_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), syscall.SOL_SOCKET, soNetnsCookie,
		uintptr(unsafe.Pointer(&cookie)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 || size != uint32(unsafe.Sizeof(cookie)) {
		return ""
	}
	return strconv.FormatUint(cookie, 10)
}
